"""Every write of the drill programme: occurrences generated from the RRULEs, scheduled, moved,
cancelled, announced, started and reviewed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from console.errors import DomainError
from drills.models import UPCOMING, Drill, DrillType, Status

HORIZON = timedelta(days=366)  # occurrences are generated this far ahead
GENERATE_JOB = "drill occurrences"
ANNOUNCE_JOB = "drill announcements"
ANNOUNCE_CHANNEL = "engineering"  # playbook section 9, step 1


class DrillRefused(DomainError):
    """A rule refuses the change; nothing changed."""


def _require(actor: Any, perm: str, what: str) -> None:
    if not actor.has_perm(perm):
        raise PermissionDenied(what)


def drills_generate(*, now: datetime | None = None, horizon: timedelta = HORIZON) -> int:
    """Create the occurrences of every enabled type's RRULE from now to `horizon` ahead; returns how
    many were new. Idempotent: an occurrence is keyed by (type, the rule's time), so a second run, a
    moved occurrence (its key stays) or a cancelled one (its row stays) is never made again."""
    now = now or timezone.now()
    rows = [
        Drill(drill_type=kind, original_at=at, scheduled_for=at)
        for kind in DrillType.objects.filter(enabled=True)
        for at in kind.recurrence().between(now, now + horizon, inc=True)
    ]
    if not rows:
        return 0
    before = Drill.objects.count()
    Drill.objects.bulk_create(rows, ignore_conflicts=True)
    return Drill.objects.count() - before


@transaction.atomic
def drill_schedule(*, drill_type: DrillType, scheduled_for: datetime, actor: User) -> Drill:
    """An extra occurrence, outside the series (a make-up drill, a first run)."""
    _require(actor, "drills.add_drill", "Scheduling drills needs the lead role.")
    if Drill.objects.filter(drill_type=drill_type, original_at=scheduled_for).exists():
        raise DrillRefused(f"A {drill_type} is already scheduled at {scheduled_for:%Y-%m-%d %H:%M}.")
    return Drill.objects.create(
        drill_type=drill_type, original_at=scheduled_for, scheduled_for=scheduled_for, created_by=actor
    )


def _locked(drill: Drill) -> Drill:
    return Drill.objects.select_for_update().select_related("drill_type").get(pk=drill.pk)


@transaction.atomic
def drill_move(*, drill: Drill, scheduled_for: datetime, actor: User) -> Drill:
    """Move one occurrence; the series (and its other occurrences) stays as it is. An announced
    drill moved is announced again for its new time."""
    _require(actor, "drills.change_drill", "Moving drills needs the lead role.")
    drill = _locked(drill)
    if drill.status not in UPCOMING:
        raise DrillRefused(f"This drill is {drill.get_status_display().lower()}: only an upcoming one moves.")
    if drill.scheduled_for == scheduled_for:
        return drill
    drill.scheduled_for = scheduled_for
    drill.moved = scheduled_for != drill.original_at
    drill.status = Status.SCHEDULED
    drill.announced_at = None
    drill.save(update_fields=["scheduled_for", "moved", "status", "announced_at"])
    return drill


@transaction.atomic
def drill_cancel(*, drill: Drill, actor: User, reason: str = "") -> Drill:
    """Cancel one occurrence; its row stays, so the generator never brings it back."""
    _require(actor, "drills.change_drill", "Cancelling drills needs the lead role.")
    drill = _locked(drill)
    if drill.status == Status.CANCELLED:
        return drill
    if drill.status not in UPCOMING:
        raise DrillRefused(
            f"This drill is {drill.get_status_display().lower()}: it can no longer be cancelled."
        )
    drill.status = Status.CANCELLED
    drill.cancelled_at = timezone.now()
    drill.cancel_reason = reason[:300]
    drill.save(update_fields=["status", "cancelled_at", "cancel_reason"])
    return drill


def _link(path: str) -> str:
    return settings.CONSOLE_URL.rstrip("/") + path


def drills_announce_due(*, now: datetime | None = None) -> int:
    """Announce every drill starting within DRILL_ANNOUNCE_HOURS (playbook section 9, step 1): to
    the engineering channel, and a reminder to each participant. Returns how many were announced."""
    now = now or timezone.now()
    due = Drill.objects.filter(
        status=Status.SCHEDULED,
        announced_at__isnull=True,
        scheduled_for__gt=now,
        scheduled_for__lte=now + timedelta(hours=settings.DRILL_ANNOUNCE_HOURS),
    ).values_list("pk", flat=True)
    return sum(_announce(pk, now) for pk in list(due))


@transaction.atomic
def _announce(pk: int, now: datetime) -> bool:
    """Claim the drill and queue its messages in one transaction: a worker killed in between rolls
    both back, and the next sweep announces it; the claim and the dedupe keys make it exactly once."""
    from django.urls import reverse

    from notify import services as notify
    from notify.models import Address

    claimed = Drill.objects.filter(pk=pk, status=Status.SCHEDULED, announced_at__isnull=True).update(
        announced_at=now, status=Status.ANNOUNCED
    )
    if not claimed:
        return False
    drill = Drill.objects.select_related("drill_type").get(pk=pk)
    kind = drill.drill_type
    when = f"{drill.scheduled_for:%A %Y-%m-%d %H:%M} UTC"
    link = _link(reverse("drills:detail", args=[drill.pk]))
    people = list(kind.participants.filter(is_active=True).order_by("username"))
    names = ", ".join(p.get_username() for p in people) or "nobody yet"
    title = f"DRILL announced: {kind.name} on {when}"
    body = (
        f"{kind.name} drill on {when} ({kind.duration_minutes} min). This is a drill: the incident it "
        f"opens is marked DRILL and acts on the drill target only. Participants: {names}. {link}"
    )
    key = f"drill-announce:{drill.pk}:{drill.scheduled_for.isoformat()}"
    outgoing = [
        notify.Outgoing(
            address_kind=Address.CHANNEL,
            address=ANNOUNCE_CHANNEL,
            title=title,
            body=body,
            kind="drill_announcement",
            dedupe_key=key,
        )
    ]
    reminder = f"Reminder: you take part in the {kind.name} drill on {when}. {link}"
    for person in people:
        person_key = f"drill-reminder:{drill.pk}:{drill.scheduled_for.isoformat()}:{person.pk}"
        notify.inbox_deliver(
            user=person, title=title, body=reminder, kind="drill_reminder", dedupe_key=person_key, now=now
        )
        outgoing += notify.person_outgoing(
            user=person, title=title, body=reminder, kind="drill_reminder", dedupe_key=person_key
        )
    notify.messages_enqueue(outgoing, now=now)
    return True
