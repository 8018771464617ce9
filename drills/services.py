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


@transaction.atomic
def drills_generate(*, now: datetime | None = None, horizon: timedelta = HORIZON) -> int:
    """Make the calendar say what the programme says, from now to `horizon` ahead; returns how many
    occurrences were new.

    1. Withdraw future occurrences the programme no longer has: generated (nobody scheduled them by
       hand), never moved, not yet announced, whose time is not one of their type's rule any more
       (the RRULE or start was edited) or whose type is disabled. What was announced, moved,
       cancelled, started or scheduled by a person stays for a person to decide.
    2. Create each enabled type's occurrences. Idempotent: an occurrence is keyed by (type, the
       rule's time), so a second run, a moved occurrence (its key stays) or a cancelled one (its row
       stays) is never made again.
    """
    now = now or timezone.now()
    untouched = Drill.objects.filter(
        status=Status.SCHEDULED, moved=False, created_by__isnull=True, scheduled_for__gt=now
    )
    kinds = list(DrillType.objects.all())
    stale = []
    for kind in kinds:
        times = list(untouched.filter(drill_type=kind).values_list("pk", "original_at"))
        if not times:
            continue
        if not kind.enabled:
            stale += [pk for pk, _ in times]
            continue
        lo, hi = min(at for _, at in times), max(at for _, at in times)
        current = set(kind.recurrence().between(lo, hi, inc=True))
        stale += [pk for pk, at in times if at not in current]
    if stale:
        Drill.objects.filter(pk__in=stale).delete()
    rows = [
        Drill(drill_type=kind, original_at=at, scheduled_for=at)
        for kind in kinds
        if kind.enabled
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


# --- Running a drill ------------------------------------------------------------------------------

TIMELINE_KIND = "drill"


def _alerts(drill: Drill, now: datetime) -> list[Any]:
    """The scenario's signals as the alerts a webhook would deliver, marked as the drill's: source
    "drill", a `drill` label, and a grouping key of this drill's own."""
    from detection.services import DRILL_LABEL, DRILL_SOURCE, AlertInput, severity_from_label

    scenario = drill.drill_type.scenario
    alerts = []
    for i, signal in enumerate(scenario.get("signals", [])):
        name, service = str(signal["alertname"]), str(signal.get("service", ""))
        alerts.append(
            AlertInput(
                source=DRILL_SOURCE,
                fingerprint=f"drill-{drill.pk}-{i}",
                status="firing",
                starts_at=now,
                severity=severity_from_label(signal.get("severity", "critical")),
                title=f"DRILL: {name}" + (f" on {service}" if service else ""),
                summary=f"Simulated by the {drill.drill_type.name} drill #{drill.pk}.",
                group_key=f"{DRILL_SOURCE}:{drill.pk}:{name}:{service}",
                labels={"alertname": name, "service": service, DRILL_LABEL: str(drill.pk)},
                component=service,
                incident_type=str(scenario.get("incident_type", "")),
            )
        )
    return alerts


@transaction.atomic
def drill_start(*, drill: Drill, actor: User, now: datetime | None = None) -> Drill:
    """Start a drill: its scenario's alerts go through the real detection path, which opens the
    drill's incident (marked DRILL: left out of real metrics, paging the drill's participants).

    1. Lock the drill; only an upcoming one starts (a second click changes nothing).
    2. Ingest the scenario's alerts (signals_ingest, as the console's detectors do): routing opens a
       drill incident for the drill's own grouping key. A scenario without alerts declares the drill
       incident directly.
    3. Link the incident, mark the drill running, and write the drill's timeline row.
    """
    from detection.models import SignalGroup
    from detection.services import signals_ingest
    from incidents import services as incident_services
    from incidents.models import IncidentType

    _require(actor, "drills.run_drill", "Running drills needs the responder role.")
    drill = _locked(drill)
    if drill.status == Status.RUNNING:
        return drill
    if drill.status not in UPCOMING:
        raise DrillRefused(f"This drill is {drill.get_status_display().lower()}: it cannot start.")
    now = now or timezone.now()
    scenario = drill.drill_type.scenario
    alerts = _alerts(drill, now)
    if alerts:
        signals_ingest(alerts, received_at=now)
        group = SignalGroup.objects.select_related("incident").get(key=alerts[0].group_key)
        incident = group.incident
        if incident is None or not incident.is_drill:
            raise DrillRefused("The drill's alert did not open a drill incident; nothing was started.")
    else:
        incident = incident_services.incident_declare(
            actor=actor,
            title=f"DRILL: {scenario.get('title') or drill.drill_type.name}",
            incident_type=IncidentType.objects.get(slug=scenario.get("incident_type", "other")),
            severity=int(scenario.get("severity", 2)),
            is_drill=True,
            detected_at=now,
        )
    drill.incident = incident
    drill.status = Status.RUNNING
    drill.started_at = now
    drill.started_by = actor
    drill.save(update_fields=["incident", "status", "started_at", "started_by"])
    incident_services.incident_record_event(
        kind=TIMELINE_KIND,
        incident=incident,
        actor=actor,
        message=f"Drill started: {drill.drill_type.name}. {scenario.get('title', '')}".strip(),
        data={"drill": drill.pk, "event": "started"},
    )
    return drill


def participants_of_incident(incident: Any) -> list[User]:
    """Whom a drill incident pages instead of the rota (escalation's drill provider)."""
    drill = Drill.objects.filter(incident=incident).select_related("drill_type").first()
    if drill is None:
        return []
    return list(drill.drill_type.participants.filter(is_active=True).order_by("username"))


# --- The review ---------------------------------------------------------------------------------


def can_review(actor: Any, drill: Drill) -> bool:
    """Leads and admins, and the owner of the drill's type."""
    return bool(actor.has_perm("drills.review_drill") or (actor.pk and drill.drill_type.owner_id == actor.pk))


@transaction.atomic
def drill_review(
    *,
    drill: Drill,
    actor: User,
    findings: str,
    playbook_proposal: str = "",
    playbook_proposal_url: str = "",
    complete: bool = False,
) -> Drill:
    """Save the review; completing it takes the measured times' snapshot and makes it the type's
    last run."""
    from drills import measures

    if not can_review(actor, drill):
        raise PermissionDenied("Reviewing a drill needs the lead role or owning its type.")
    drill = _locked(drill)
    if drill.status not in (Status.RUNNING, Status.COMPLETED):
        raise DrillRefused("Only a drill that ran can be reviewed.")
    drill.findings = findings
    drill.playbook_proposal = playbook_proposal
    drill.playbook_proposal_url = playbook_proposal_url
    drill.reviewed_by = actor
    fields = ["findings", "playbook_proposal", "playbook_proposal_url", "reviewed_by"]
    if complete and drill.status == Status.RUNNING:
        drill.measured = measures.measure(drill)
        drill.status = Status.COMPLETED
        drill.completed_at = timezone.now()
        fields += ["measured", "status", "completed_at"]
        if drill.incident is not None:
            from incidents import services as incident_services

            incident_services.incident_record_event(
                kind=TIMELINE_KIND,
                incident=drill.incident,
                actor=actor,
                message=f"Drill reviewed and completed: {drill.drill_type.name}",
                data={"drill": drill.pk, "event": "completed"},
            )
    drill.save(update_fields=fields)
    return drill


def action_items_panel(drill: Drill) -> dict[str, Any] | None:
    """The review's action items: those of the drill's incident, where items added from the review
    go (origin "drill"); None for a drill that never ran."""
    from django.urls import reverse

    from actions.selectors import action_items_for_incident

    if drill.incident is None:
        return None
    return {
        "incident": drill.incident,
        "items": action_items_for_incident(drill.incident),
        "next": reverse("drills:review", args=[drill.pk]),
        "origin": "drill",
    }
