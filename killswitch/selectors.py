"""Kill-switch reads: the banner's live states, requests, and the audit, permission-scoped."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils import timezone

from killswitch.backends import Condition, State
from killswitch.models import AuditRecord, ResumeRequest, ResumeStatus, TargetState
from killswitch.targets import Target, all_targets


@dataclass(frozen=True)
class BannerState:
    target: Target
    condition: str  # live, as the kill-switch page shows it
    reason: str
    message: str
    detail: str
    since: datetime | None
    by: str
    observed_at: datetime | None
    stale: bool  # reconcile has not recorded anything lately
    recorded: str = ""  # the condition the console last recorded
    differs: bool = False  # the live state is not (yet) what the console recorded

    @property
    def summary(self) -> str:
        return self.detail if self.condition in ("unevaluable", "unreachable") else self.message


# Each process reuses a live read for KILLSWITCH_BANNER_CACHE_SECONDS (every page shows the banner),
# unless the console recorded something since: its own halt shows on the next page at once.
_live_cache: dict[tuple[str, str], tuple[float, datetime | None, State]] = {}
_live_lock = threading.Lock()


def live_state(target: Target, *, recorded_at: datetime | None = None) -> State:
    """The target read now (bounded by its backend's timeout), or at most a second or so ago and
    not before the console's last record (`recorded_at`, the row's observed_at)."""
    key, ttl = (target.name, target.spec), float(settings.KILLSWITCH_BANNER_CACHE_SECONDS)
    with _live_lock:
        cached = _live_cache.get(key)
    if cached is not None and cached[1] == recorded_at and time.monotonic() - cached[0] < ttl:
        return cached[2]
    state = target.backend().read()
    with _live_lock:
        _live_cache[key] = (time.monotonic(), recorded_at, state)
    return state


def banner_states() -> list[BannerState]:
    """Each target's live state (the kill-switch page's), next to what the console last recorded
    (one query): a difference is shown until reconcile records it. Stale when reconcile has not run."""
    rows = {r.target: r for r in TargetState.objects.all()}
    now = timezone.now()
    stale_after = timedelta(seconds=max(30.0, settings.KILLSWITCH_RECONCILE_SECONDS * 3))
    states = []
    for target in all_targets().values():
        row = rows.get(target.name)
        observed = row.observed_at if row else None
        live = live_state(target, recorded_at=observed)
        # Unreachable keeps the last evaluated fingerprint: compare with that, and say "unreachable".
        differs = row is None or (
            live.fingerprint() != row.fingerprint
            if live.condition != Condition.UNREACHABLE
            else row.condition != Condition.UNREACHABLE
        )
        states.append(
            BannerState(
                target=target,
                condition=live.condition,
                reason=live.reason or "",
                message=live.message,
                detail=live.detail,
                since=None if differs or row is None else row.changed_at,
                by="" if differs or row is None else row.changed_by,
                observed_at=observed,
                stale=observed is None or now - observed > stale_after,
                recorded=row.condition if row else "unknown",
                differs=differs,
            )
        )
    return states


def resume_requests(*, pending_only: bool = False) -> QuerySet[ResumeRequest]:
    qs = ResumeRequest.objects.select_related("requested_by", "decided_by", "incident").order_by(
        "-created_at"
    )
    return qs.filter(status=ResumeStatus.PENDING) if pending_only else qs


def audit_visible_to(user: Any) -> QuerySet[AuditRecord]:
    if not user.has_perm("killswitch.view_auditrecord"):
        raise PermissionDenied("The kill-switch audit is for leads and admins.")
    return AuditRecord.objects.select_related("actor").order_by("-seq")


def audit_filtered(user: Any, filters: dict[str, Any]) -> QuerySet[AuditRecord]:
    qs = audit_visible_to(user)
    if filters.get("actor"):
        qs = qs.filter(actor_name__icontains=filters["actor"])
    if filters.get("action"):
        qs = qs.filter(action=filters["action"])
    if filters.get("target"):
        qs = qs.filter(target=filters["target"])
    if filters.get("since"):
        qs = qs.filter(created_at__date__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(created_at__date__lte=filters["until"])
    return qs
