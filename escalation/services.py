"""Escalation: who is reached when nobody acknowledges, from the database.

When an incident opens, its chain is copied from the matrix (one `Step` per row of its severity, due
at opening + the row's minutes). A periodic sweep (woken at once when a step is due now) performs
every due step: it locks the incident and the step, decides (skip it if the incident was acknowledged
or resolved since the chain started), reaches the people the rota names (console inbox, email,
personal webhook, a mention in the routed channel) through the outbox, writes the step's timeline
row and marks it done, all in one transaction. So a step is performed exactly once: a killed worker,
a Redis restart or a lost wake-up rolls back or delays it, never skips or repeats it (delivery is then
the outbox's at-least-once).

Acknowledging cancels the steps that wait for an acknowledgement; resolving cancels the rest.
Reopening, or raising the severity, starts a new chain (a new generation) from the new severity's
rules; lowering it keeps the chain's start and drops the steps the new severity does not have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from comms import rendering
from comms.services import route_for
from console.wakeup import Waker
from escalation.models import PolicyStep, Step, StepAction, StepState, Target, Until
from incidents import services as incident_services
from incidents.models import Incident, Status, TimelineEvent
from notify import services as notify
from notify.models import Address, ContactPoints, InboxItem
from oncall import selectors as oncall
from oncall.models import Duty

log = logging.getLogger(__name__)

KIND = "escalation"  # the timeline rows of performed steps
CHUNK = 100  # incidents per sweep transaction
DUTY_OF = {
    Target.ONCALL_ENGINEER: Duty.ONCALL_ENGINEER,
    Target.TECH_LEAD: Duty.TECH_LEAD,
    Target.EXECUTIVE: Duty.EXECUTIVE,
}
wake_escalator = Waker("escalation.tasks.escalate")

# Who a drill incident pages instead of the rota: its participants (the drills app provides them).
_drill_participants: list[Callable[[Incident], list[User]]] = []


def provide_drill_participants(provider: Callable[[Incident], list[User]]) -> None:
    _drill_participants.append(provider)


def drill_participants(incident: Incident) -> list[User]:
    return [user for provider in _drill_participants for user in provider(incident)]


# --- The chain ------------------------------------------------------------------------------------


def _policy() -> dict[int, list[PolicyStep]]:
    by_level: dict[int, list[PolicyStep]] = {}
    for row in PolicyStep.objects.order_by("severity", "position"):
        by_level.setdefault(row.severity, []).append(row)
    return by_level


def _steps(incident: Incident, rows: list[PolicyStep], *, start: datetime, generation: int) -> list[Step]:
    return [
        Step(
            incident=incident,
            generation=generation,
            position=row.position,
            severity=incident.severity,
            after_minutes=row.after_minutes,
            target=row.target,
            action=row.action,
            until=row.until,
            due_at=start + timedelta(minutes=row.after_minutes),
        )
        for row in rows
    ]


def chains_start(incidents: list[Incident], *, at: datetime) -> None:
    """New incidents' chains (generation 1), in one INSERT; wakes the sweep for steps due now."""
    policy = _policy()
    steps = [s for i in incidents for s in _steps(i, policy.get(i.severity, []), start=at, generation=1)]
    Step.objects.bulk_create(steps)
    if any(s.due_at <= timezone.now() for s in steps):
        transaction.on_commit(wake_escalator)


def chain_stop(incident: Incident, *, until: tuple[str, ...], note: str) -> int:
    """Cancel the incident's pending steps that end at `until` (acknowledged, resolved)."""
    return Step.objects.filter(incident=incident, state=StepState.PENDING, until__in=until).update(
        state=StepState.CANCELLED, done_at=timezone.now(), note=note[:300]
    )


def chain_restart(incident: Incident, *, at: datetime, note: str, keep_start: bool = False) -> None:
    """A new generation from the incident's (new) severity. `keep_start`: count from when the current
    chain started and leave out the steps already past (a lowered severity repeats nobody)."""
    current = Step.objects.filter(incident=incident).aggregate(g=Max("generation"))["g"] or 0
    start = at
    if keep_start and current:
        first = Step.objects.filter(incident=incident, generation=current).order_by("position").first()
        if first is not None:
            start = first.due_at - timedelta(minutes=first.after_minutes)
    Step.objects.filter(incident=incident, state=StepState.PENDING).update(
        state=StepState.CANCELLED, done_at=timezone.now(), note=note[:300]
    )
    steps = _steps(incident, _policy().get(incident.severity, []), start=start, generation=current + 1)
    if keep_start:
        steps = [s for s in steps if s.due_at > at]
    Step.objects.bulk_create(steps)
    if any(s.due_at <= timezone.now() for s in steps):
        transaction.on_commit(wake_escalator)


def _severity(label: str) -> int | None:
    digits = label.rsplit("-", 1)[-1]
    return int(digits) if digits.isdigit() else None


def on_timeline(rows: list[TimelineEvent]) -> None:
    """The timeline listener: start, stop and restart chains as incidents change."""
    declared = [row.incident for row in rows if row.kind == "declared"]
    if declared:
        chains_start(declared, at=timezone.now())
    for row in rows:
        incident = row.incident
        if row.kind == "acknowledged":
            chain_stop(incident, until=(Until.ACKNOWLEDGED,), note=f"acknowledged by {row.new_value}")
            InboxItem.objects.filter(
                incident_id=incident.pk, kind=StepAction.PAGE, read_at__isnull=True
            ).update(read_at=timezone.now())
        elif row.kind == "status_changed" and row.new_value in (Status.RESOLVED, Status.CLOSED):
            chain_stop(incident, until=(Until.ACKNOWLEDGED, Until.RESOLVED), note=row.new_value)
        elif row.kind == "status_changed" and row.old_value == Status.RESOLVED:
            chain_restart(incident, at=timezone.now(), note="reopened: a new chain")
        elif row.kind == "severity_changed":
            old, new = _severity(row.old_value), _severity(row.new_value)
            if old is not None and new is not None and new < old:
                chain_restart(incident, at=timezone.now(), note=f"raised to {row.new_value}: a new chain")
            elif old is not None and new is not None and new > old:
                chain_restart(
                    incident, at=timezone.now(), note=f"lowered to {row.new_value}", keep_start=True
                )


# --- The sweep ------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    """What one sweep transaction writes, in a few statements."""

    now: datetime
    on_call: dict[str, list[User]] = field(default_factory=dict)
    events: dict[Incident, list[dict[str, Any]]] = field(default_factory=dict)
    outgoing: list[notify.Outgoing] = field(default_factory=list)
    inbox: list[InboxItem] = field(default_factory=list)
    done: list[Step] = field(default_factory=list)
    points: dict[int, ContactPoints] = field(default_factory=dict)
    routes: dict[int, str] = field(default_factory=dict)

    def channel(self, severity: int) -> str:
        """The severity's routed channel, read once per chunk."""
        if severity not in self.routes:
            self.routes[severity] = route_for(severity)[0]
        return self.routes[severity]

    def duty(self, duty: str) -> list[User]:
        """Who holds `duty` now, read once per chunk."""
        if duty not in self.on_call:
            self.on_call[duty] = oncall.on_call(duty, self.now)
        return self.on_call[duty]

    def contact(self, user: User) -> ContactPoints | None:
        """A person's contact points, read once per chunk."""
        if user.pk not in self.points:
            self.points[user.pk] = ContactPoints.objects.filter(user=user).first() or ContactPoints(user=user)
        return self.points[user.pk]


def escalation_sweep(*, now: datetime | None = None, chunk: int = CHUNK) -> int:
    """Perform every due step; returns how many were performed or cancelled. Safe to run repeatedly
    and concurrently: incidents locked by another sweep (or by a person acting on them) are skipped
    and picked up next time."""
    handled = 0
    while True:
        moment = now or timezone.now()
        due = list(
            Step.objects.filter(state=StepState.PENDING, due_at__lte=moment)
            .order_by("due_at", "id")
            .values_list("incident_id", flat=True)[: chunk * 5]
        )
        incident_ids = list(dict.fromkeys(due))[:chunk]
        if not incident_ids:
            return handled
        done = _sweep_chunk(incident_ids, moment)
        handled += done
        if done == 0 or len(incident_ids) < chunk:
            return handled


@transaction.atomic
def _sweep_chunk(incident_ids: list[int], now: datetime) -> int:
    incidents = {
        i.pk: i
        for i in Incident.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("commander")
        .filter(pk__in=incident_ids)
        .order_by("pk")
    }
    steps = list(
        Step.objects.select_for_update(skip_locked=True)
        .filter(incident_id__in=incidents, state=StepState.PENDING, due_at__lte=now)
        .order_by("due_at", "position", "id")
    )
    if not steps:
        return 0
    work = _Chunk(now=now)
    for step in steps:
        _perform(step, incidents[step.incident_id], work)
    _flush(work)
    return len(steps)


def _chain_start(step: Step) -> datetime:
    return step.due_at - timedelta(minutes=step.after_minutes)


def _perform(step: Step, incident: Incident, work: _Chunk) -> None:
    step.done_at = work.now
    if incident.status in (Status.RESOLVED, Status.CLOSED):
        step.state, step.note = StepState.CANCELLED, f"incident {incident.status}"
        work.done.append(step)
        return
    acked = incident.acknowledged_at is not None and incident.acknowledged_at >= _chain_start(step)
    if step.until == Until.ACKNOWLEDGED and acked:
        step.state, step.note = StepState.CANCELLED, "acknowledged"
        work.done.append(step)
        return
    target = Target(step.target)
    channel = work.channel(incident.severity)
    if incident.is_drill:
        people, queue = drill_participants(incident), False
    elif target == Target.ENGINEERING_QUEUE:
        people, queue = [], True
    elif target == Target.ASSIGNED_ENGINEER:
        people, queue = (
            ([incident.commander] if incident.commander else work.duty(Duty.ONCALL_ENGINEER)),
            False,
        )
    else:
        people, queue = work.duty(DUTY_OF[target]), False
    verb = "Paged" if step.action == StepAction.PAGE else "Notified"
    label = target.label.split(" (")[0].lower()
    link = rendering.link(incident)
    drill = "DRILL · " if incident.is_drill else ""
    title = f"{drill}{incident.reference} {incident.get_severity_display()}: {incident.title}"
    if people:
        names = ", ".join(p.get_username() for p in people)
        message = f"{verb} {names} ({'drill participant' if incident.is_drill else label})"
        why = "You are paged" if step.action == StepAction.PAGE else "For your information"
        body = f"{title}\n{why}: {link}"
        for person in people:
            work.inbox.append(
                InboxItem(
                    user=person,
                    created_at=work.now,
                    kind=step.action,
                    incident_id=incident.pk,
                    title=title[:300],
                    body=body,
                )
            )
            work.outgoing.extend(
                notify.person_outgoing(
                    user=person,
                    title=title,
                    body=body,
                    kind=step.action,
                    incident_id=incident.pk,
                    points=work.contact(person),
                )
            )
        handles = [(work.contact(p) or ContactPoints()).chat_handle or p.get_username() for p in people]
        chat = f"{verb} {', '.join(handles)} ({label}) for {title}\n{link}"
    elif queue:
        message = f"{verb} the engineering queue (#{channel})"
        chat = f"{title}\n{link}"
    else:
        who = "drill participants" if incident.is_drill else f"anyone as {label}"
        message = f"Nobody to {'page' if step.action == StepAction.PAGE else 'notify'}: no {who} on call"
        chat = f"{message} for {title}. Reach someone by hand.\n{link}"
    if not incident.is_drill or people:
        work.outgoing.append(
            notify.Outgoing(
                address_kind=Address.CHANNEL,
                address=channel,
                kind=step.action,
                title=title[:300],
                body=chat,
                incident_id=incident.pk,
            )
        )
    step.state, step.note = StepState.DONE, message[:300]
    work.done.append(step)
    work.events.setdefault(incident, []).append(
        {
            "kind": KIND,
            "actor": None,
            "new": target.value,
            "message": message,
            "data": {
                "step": step.pk,
                "generation": step.generation,
                "position": step.position,
                "action": step.action,
                "target": step.target,
                "recipients": [p.get_username() for p in people],
            },
            "at": work.now,
        }
    )


def _flush(work: _Chunk) -> None:
    Step.objects.bulk_update(work.done, ["state", "done_at", "note"])
    if work.inbox:
        InboxItem.objects.bulk_create(work.inbox)
    notify.messages_enqueue(work.outgoing, now=work.now)
    if work.events:
        incident_services.incidents_record_events(entries=work.events)


def chain_for(incident: Incident) -> list[Step]:
    """The incident's current chain (its latest generation), in order."""
    latest = Step.objects.filter(incident=incident).aggregate(g=Max("generation"))["g"]
    if latest is None:
        return []
    return list(Step.objects.filter(incident=incident, generation=latest).order_by("position"))
