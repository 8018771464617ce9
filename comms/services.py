"""Messages about incidents: the notice when one opens, what a commander composes, the resolution and
the summary when it resolves, and the reminder when a status update is overdue. Every message goes
through the outbox in the transaction of the change that causes it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from comms import rendering
from comms.models import COMPOSABLE, MessageTemplate, Route, Setting, TemplateKind, UpdateClock
from console.errors import DomainError
from incidents import services as incident_services
from incidents.models import OPEN_STATUSES, Incident, Status, TimelineEvent
from notify import services as notify
from notify.models import Address, Message
from oncall import selectors as oncall
from oncall.models import Duty

KIND_SENT = "message_sent"  # timeline: a message left for a channel
KIND_DELIVERY = "delivery"  # timeline: a message about the incident was delivered, or failed
KIND_REMINDER = "update_reminder"  # timeline: the commander was reminded of an overdue update
DEFAULT_CHANNELS = {1: "incidents", 2: "incidents", 3: "engineering", 4: "engineering"}
MAX_TEXT = 4000


class CommsRefused(DomainError):
    pass


def route_for(severity: int) -> tuple[str, int | None]:
    """(channel, update cadence in minutes) of a severity; the playbook's defaults without data."""
    route = Route.objects.filter(severity=severity).values_list("channel", "update_every_minutes").first()
    return route if route else (DEFAULT_CHANNELS[severity], None)


def summary_channel() -> str:
    return (
        Setting.objects.filter(name="summary_channel").values_list("value", flat=True).first()
        or "stakeholders"
    )


def _set_clock(incident: Incident, *, start: datetime, cadence: int | None) -> None:
    due = start + timedelta(minutes=cadence) if cadence else None
    UpdateClock.objects.update_or_create(incident=incident, defaults={"due_at": due})


def notices_declared(incidents: list[Incident]) -> None:
    """Incidents opened (declared by a person or detected): a short notice to each one's routed channel
    at once, saying so when nobody is on call, and their update clocks start. A fixed number of
    queries whatever the number of incidents (alert routing declares bursts)."""
    now = timezone.now()
    routes = {r.severity: (r.channel, r.update_every_minutes) for r in Route.objects.all()}
    template = MessageTemplate.objects.filter(kind=TemplateKind.NOTICE).first()
    nobody = not oncall.on_call(Duty.ONCALL_ENGINEER, now)
    outgoing, clocks = [], []
    for incident in incidents:
        channel, cadence = routes.get(incident.severity, (DEFAULT_CHANNELS[incident.severity], None))
        title, text = rendering.render(
            TemplateKind.NOTICE, incident, extra={"on_call": not nobody}, template=template
        )
        outgoing.append(
            notify.Outgoing(
                address_kind=Address.CHANNEL,
                address=channel,
                kind=TemplateKind.NOTICE,
                title=title,
                body=text,
                incident_id=incident.pk,
            )
        )
        clocks.append(
            UpdateClock(incident=incident, due_at=now + timedelta(minutes=cadence) if cadence else None)
        )
    UpdateClock.objects.bulk_create(clocks, ignore_conflicts=True)
    notify.messages_enqueue(outgoing, now=now)


@transaction.atomic
def message_send(*, incident: Incident | int, actor: User, kind: str, title: str, text: str) -> Message:
    """A commander's message (initial alert, status update, resolution) to the incident's routed
    channel; its text goes on the timeline and the next update falls due one cadence later."""
    if kind not in COMPOSABLE:
        raise CommsRefused(f"Unknown message template {kind!r}.")
    title, text = title.strip(), text.strip()
    if not text:
        raise CommsRefused("The message is empty.")
    if len(text) > MAX_TEXT:
        raise CommsRefused(f"The message is too long ({len(text)} characters, at most {MAX_TEXT}).")
    incident = Incident.objects.select_for_update().get(
        pk=incident if isinstance(incident, int) else incident.pk
    )
    channel, cadence = route_for(incident.severity)
    [message] = notify.messages_enqueue(
        [
            notify.Outgoing(
                address_kind=Address.CHANNEL,
                address=channel,
                kind=kind,
                title=(title or f"{incident.reference} {incident.title}")[:300],
                body=text,
                incident_id=incident.pk,
            )
        ]
    )
    incident_services.incident_record_event(
        incident=incident,
        kind=KIND_SENT,
        actor=actor,
        message=text,
        new=channel,
        data={"template": kind, "message": message.pk, "channel": channel},
    )
    if kind != TemplateKind.RESOLUTION and incident.is_open:
        _set_clock(incident, start=timezone.now(), cadence=cadence)
    return message


def resolution_announce(incident: Incident) -> None:
    """The incident resolved: the resolution message to its routed channel (unless the commander
    already sent one since it last opened) and the summary email to the stakeholders' channel, in
    the transaction of the status change; the update clock stops."""
    opened = (
        TimelineEvent.objects.filter(incident=incident, kind="status_changed", data__reopened=True)
        .order_by("-id")
        .values_list("created_at", flat=True)
        .first()
    ) or incident.declared_at
    channel, _ = route_for(incident.severity)
    outgoing = []
    already = Message.objects.filter(
        incident_id=incident.pk, kind=TemplateKind.RESOLUTION, created_at__gte=opened
    )
    if not already.exists():
        title, text = rendering.render(TemplateKind.RESOLUTION, incident)
        outgoing.append(
            notify.Outgoing(
                address_kind=Address.CHANNEL,
                address=channel,
                kind=TemplateKind.RESOLUTION,
                title=title,
                body=text,
                incident_id=incident.pk,
            )
        )
    title, text = rendering.render(TemplateKind.SUMMARY, incident)
    outgoing.append(
        notify.Outgoing(
            address_kind=Address.CHANNEL,
            address=summary_channel(),
            kind=TemplateKind.SUMMARY,
            title=title,
            body=text,
            incident_id=incident.pk,
        )
    )
    notify.messages_enqueue(outgoing)
    # No timeline row of its own: resolving writes the incident's one row; the messages panel shows
    # these two with their delivery state.
    UpdateClock.objects.filter(incident=incident).update(due_at=None)


def clock_restart(incident: Incident) -> None:
    """Reopened, or its severity changed: the next update falls due one (new) cadence from now."""
    _, cadence = route_for(incident.severity)
    _set_clock(incident, start=timezone.now(), cadence=cadence)


def update_reminders_sweep(*, now: datetime | None = None) -> int:
    """Remind the commander (or, without one, the routed channel) of each overdue status update,
    once per due time. Idempotent: the clock's row lock and `reminded_for` make a repeat a no-op."""
    now = now or timezone.now()
    due = list(
        UpdateClock.objects.filter(due_at__lte=now, incident__status__in=OPEN_STATUSES)
        .exclude(reminded_for=F("due_at"))
        .values_list("pk", flat=True)[:500]
    )
    return sum(_remind(pk, now) for pk in due)


@transaction.atomic
def _remind(clock_id: int, now: datetime) -> bool:
    clock = UpdateClock.objects.select_for_update(skip_locked=True).filter(pk=clock_id).first()
    if clock is None or clock.due_at is None or clock.due_at > now or clock.reminded_for == clock.due_at:
        return False
    incident = (
        Incident.objects.select_for_update(of=("self",)).select_related("commander").get(pk=clock.incident_id)
    )
    if incident.status not in OPEN_STATUSES:
        return False
    late = int((now - clock.due_at).total_seconds() // 60)
    text = f"A status update on {incident.reference} was due {late} min ago: {rendering.link(incident)}"
    title = f"{incident.reference}: status update overdue"
    if incident.commander is not None:
        notify.inbox_deliver(
            user=incident.commander,
            title=title,
            body=text,
            kind="reminder",
            incident_id=incident.pk,
            dedupe_key=f"reminder:{incident.pk}:{clock.due_at.isoformat()}",
        )
        to = incident.commander.get_username()
        outgoing = notify.person_outgoing(
            user=incident.commander,
            title=title,
            body=text,
            kind="reminder",
            incident_id=incident.pk,
            dedupe_key=f"reminder:{incident.pk}:{clock.due_at.isoformat()}",
        )
    else:
        channel, _ = route_for(incident.severity)
        to = f"#{channel} (no commander)"
        outgoing = [
            notify.Outgoing(
                address_kind=Address.CHANNEL, address=channel, kind="reminder", title=title, body=text,
                incident_id=incident.pk, dedupe_key=f"reminder:{incident.pk}:{clock.due_at.isoformat()}",
            )
        ]  # fmt: skip
    notify.messages_enqueue(outgoing, now=now)
    clock.reminded_for = clock.due_at
    clock.save(update_fields=["reminded_for"])
    incident_services.incident_record_event(
        incident=incident,
        kind=KIND_REMINDER,
        actor=None,
        message=f"Status update overdue: reminded {to}",
        new=to,
    )
    return True


def on_timeline(rows: list[TimelineEvent]) -> None:
    """The timeline listener: notices on declaration, the resolution on resolve, the clock on reopen
    or a severity change."""
    declared = [row.incident for row in rows if row.kind == "declared"]
    if declared:
        notices_declared(declared)
    for row in rows:
        if row.kind == "status_changed" and row.new_value == Status.RESOLVED:
            resolution_announce(row.incident)
        elif (
            row.kind == "status_changed"
            and row.old_value == Status.RESOLVED
            and row.new_value != Status.CLOSED
        ) or row.kind == "severity_changed":
            clock_restart(row.incident)


DELIVERY_WORDS = {"sent": "delivered", "retrying": "failed, will retry", "failed": "failed, given up"}


def deliveries_record(outcomes: list[tuple[Message, str]]) -> None:
    """Each message about an incident reached its destination, or failed: one timeline row each (the
    incident page shows it live), written for the whole batch at once. Incidents that are gone are
    skipped."""
    about = [(m, state) for m, state in outcomes if m.incident_id]
    if not about:
        return
    with transaction.atomic():
        incidents = {
            i.pk: i
            for i in Incident.objects.select_for_update(of=("self",))
            .filter(pk__in={m.incident_id for m, _ in about})
            .order_by("pk")
        }
        entries: dict[Incident, list[dict[str, object]]] = {}
        for message, state in about:
            incident = incidents.get(message.incident_id or 0)
            if incident is None:
                continue
            where = f"#{message.address}" if message.address_kind == Address.CHANNEL else message.address_kind
            who = (
                f" to {message.recipient.get_username()}"
                if message.recipient_id and message.recipient
                else ""
            )
            text = f"{message.kind.capitalize()}{who} by {where}: {DELIVERY_WORDS.get(state, state)}"
            if state != "sent" and message.last_error:
                text += f" ({message.last_error[:200]})"
            entries.setdefault(incident, []).append(
                {"kind": KIND_DELIVERY, "message": text, "new": state, "data": {"message": message.pk}}
            )
        incident_services.incidents_record_events(entries=entries)
