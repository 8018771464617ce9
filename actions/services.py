"""Every write to action items. Each service locks the item, returns early when nothing changes, and
records its timeline row on the item's incident in the same transaction (also on a closed incident:
action items outlive the incident they came from)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from actions.models import (
    ACTIVE_STATUSES,
    CLOSED_STATUSES,
    ActionItem,
    ItemStatus,
    Origin,
    validate_tracker_url,
)
from incidents.models import Incident
from incidents.services import incident_record_event

KIND_ADDED = "action_item_added"
KIND_STATUS = "action_item_status"
MAX_TITLE = 300
SWEEP_LIMIT = 500


class ActionItemError(Exception):
    """A refused write, with a message a person can act on."""


class Unset(enum.Enum):
    TOKEN = 0


UNSET = Unset.TOKEN


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ActionItemError("An action item needs a title.")
    if len(title) > MAX_TITLE:
        raise ActionItemError(f"The title is longer than {MAX_TITLE} characters.")
    return title


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if url:
        try:
            validate_tracker_url(url)
        except ValidationError as exc:
            raise ActionItemError("The tracker link must be an http:// or https:// address.") from exc
    return url


def _who(user: Any) -> str:
    return user.get_username() if user is not None else "nobody"


@transaction.atomic
def action_item_create(
    *,
    incident: Incident,
    actor: User | None,
    title: str,
    owner: User | None = None,
    due: date | None = None,
    tracker_url: str = "",
    origin: str = Origin.INCIDENT,
) -> ActionItem:
    """Create an item on `incident` and record it on the incident's timeline."""
    if origin not in Origin.values:
        raise ActionItemError(f"Unknown origin {origin!r}.")
    now = timezone.now()
    item = ActionItem.objects.create(
        incident=incident,
        origin=origin,
        title=_clean_title(title),
        owner=owner,
        due=due,
        tracker_url=_clean_url(tracker_url),
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    owner_text = f", owner {_who(owner)}" if owner else ""
    due_text = f", due {due.isoformat()}" if due else ""
    incident_record_event(
        incident=incident,
        kind=KIND_ADDED,
        actor=actor,
        message=f"Action item added ({Origin(origin).label.lower()}): {item.title}{owner_text}{due_text}",
        new=item.title,
        data={"action_item": item.pk, "origin": origin},
    )
    return item


def _lock(item: ActionItem) -> ActionItem:
    locked = ActionItem.objects.select_for_update(of=("self",)).select_related("owner", "incident")
    return locked.get(pk=item.pk)


@transaction.atomic
def action_item_update(
    *,
    item: ActionItem,
    actor: User | None,
    title: str | Unset = UNSET,
    owner: User | Unset | None = UNSET,
    due: date | Unset | None = UNSET,
    tracker_url: str | Unset = UNSET,
) -> ActionItem:
    """Change the given fields (those not passed stay). A new due date may get its own reminder."""
    locked = _lock(item)
    changes: dict[str, Any] = {}
    if title is not UNSET:
        changes["title"] = _clean_title(title)
    if owner is not UNSET:
        changes["owner_id"] = owner.pk if owner is not None else None
    if due is not UNSET:
        changes["due"] = due
    if tracker_url is not UNSET:
        changes["tracker_url"] = _clean_url(tracker_url)
    changes = {k: v for k, v in changes.items() if getattr(locked, k) != v}
    if not changes:
        return locked
    for field, value in changes.items():
        setattr(locked, field, value)
    locked.updated_at = timezone.now()
    fields = [f.removesuffix("_id") if f == "owner_id" else f for f in changes]
    locked.save(update_fields=[*fields, "updated_at"])
    return ActionItem.objects.select_related("owner", "incident").get(pk=locked.pk)


@transaction.atomic
def action_item_set_status(*, item: ActionItem, actor: User | None, status: str) -> ActionItem:
    """Move the item to `status`; done and won't-do stamp `completed_at`, reopening clears it."""
    if status not in ItemStatus.values:
        raise ActionItemError(f"Unknown status {status!r}.")
    locked = _lock(item)
    if locked.status == status:
        return locked
    old = locked.status
    now = timezone.now()
    locked.status = status
    locked.completed_at = now if status in CLOSED_STATUSES else None
    locked.updated_at = now
    locked.save(update_fields=["status", "completed_at", "updated_at"])
    incident_record_event(
        incident=locked.incident_id,
        kind=KIND_STATUS,
        actor=actor,
        message=f"Action item {ItemStatus(status).label.lower()}: {locked.title}",
        old=ItemStatus(old).label,
        new=ItemStatus(status).label,
        data={"action_item": locked.pk, "from": old, "to": status},
    )
    return locked


def action_items_remind_overdue(*, now: datetime | None = None) -> int:
    """Remind each owner of their overdue items, once per due date. Returns how many were reminded.

    1. Read the overdue items not yet reminded for their current due date.
    2. For each, in one transaction: claim it with a conditional UPDATE (`reminded_due = due` where it
       still differs), then put the reminder in the outbox. The claim and the message commit together,
       so a worker that dies between them leaves neither, and the next sweep tries again; two sweeps at
       once cannot both claim. The dedupe keys guard the outbox as well.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    due = list(
        _unreminded()
        .filter(status__in=ACTIVE_STATUSES, due__lt=today, owner__isnull=False)
        .values_list("pk", "due")[:SWEEP_LIMIT]
    )
    return sum(_remind(pk, due_date, now) for pk, due_date in due)


def _unreminded() -> Any:
    return ActionItem.objects.filter(Q(reminded_due__isnull=True) | ~Q(reminded_due=F("due")))


@transaction.atomic
def _remind(pk: int, due: date, now: datetime) -> bool:
    from notify import services as notify

    claimed = (
        _unreminded()
        .filter(pk=pk, due=due, status__in=ACTIVE_STATUSES, owner__isnull=False)
        .update(reminded_due=due)
    )
    if not claimed:
        return False
    item = ActionItem.objects.select_related("owner", "incident").get(pk=pk)
    owner = item.owner
    assert owner is not None
    days = (timezone.localdate(now) - due).days
    link = settings.CONSOLE_URL.rstrip("/") + reverse("actions:mine")
    title = f"Action item overdue: {item.title}"
    body = (
        f"Your action item from {item.incident.reference} ({item.get_origin_display().lower()}) was due "
        f"{due.isoformat()} ({days} d ago): {item.title}\n{link}"
    )
    key = f"action-item-overdue:{item.pk}:{due.isoformat()}"
    notify.inbox_deliver(
        user=owner,
        title=title,
        body=body,
        kind="reminder",
        incident_id=item.incident_id,
        dedupe_key=key,
        now=now,
    )
    outgoing = notify.person_outgoing(
        user=owner, title=title, body=body, kind="reminder", incident_id=item.incident_id, dedupe_key=key
    )
    notify.messages_enqueue(outgoing, now=now)
    return True
