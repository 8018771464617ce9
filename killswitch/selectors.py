"""Kill-switch reads: the banner's last observed states, requests, and the audit, permission-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils import timezone

from killswitch.models import AuditRecord, ResumeRequest, ResumeStatus, TargetState
from killswitch.targets import Target, all_targets


@dataclass(frozen=True)
class BannerState:
    target: Target
    condition: str
    reason: str
    message: str
    detail: str
    since: datetime | None
    by: str
    observed_at: datetime | None
    stale: bool


def banner_states() -> list[BannerState]:
    """What the console last observed for each target (one query). Stale when reconcile has not run."""
    rows = {r.target: r for r in TargetState.objects.all()}
    now = timezone.now()
    stale_after = timedelta(seconds=max(30.0, settings.KILLSWITCH_RECONCILE_SECONDS * 3))
    states = []
    for target in all_targets().values():
        row = rows.get(target.name)
        observed = row.observed_at if row else None
        states.append(
            BannerState(
                target=target,
                condition=row.condition if row else "unknown",
                reason=row.reason if row else "",
                message=row.message if row else "",
                detail=row.detail if row else "",
                since=row.changed_at if row else None,
                by=row.changed_by if row else "",
                observed_at=observed,
                stale=observed is None or now - observed > stale_after,
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
