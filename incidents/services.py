"""Every write to an incident. One service per action; each writes exactly one timeline event in the
same transaction, or changes nothing (a double click, a refused action)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from incidents import timeline
from incidents.lifecycle import ActionRefused, check_transition, in_monitoring_window
from incidents.models import (
    PLAYBOOK_LEVELS,
    Checklist,
    ChecklistKind,
    EventKind,
    Incident,
    IncidentChecklistItem,
    IncidentType,
    PlaybookVersion,
    Severity,
    SeverityLevel,
    Status,
    TimelineEvent,
)
from incidents.triage import below_suggestion_message, suggested_severity

COMMANDER_PERMS = ("incidents.view_incident", "incidents.change_incident")
MAX_NOTE = 10_000
MAX_REASON = 500
SOMEONE_CHANGED_IT = "(someone changed it); nothing changed."


class Unseen(enum.Enum):
    """What a caller passes when it cannot say what the person saw (a task, a script)."""

    TOKEN = 0


UNSEEN = Unseen.TOKEN


@dataclass(frozen=True)
class DeclareDefaults:
    """What a declaration copies from the playbook. Read per declaration, or once for a batch of them
    (alert routing declares many in one transaction)."""

    response_minutes: dict[int, int]
    checklists: dict[str, list[str]]
    checks: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> {item text: fact name}
    playbook_version_id: int | None = None  # the version these were adopted with (None: no version yet)


def declare_defaults() -> DeclareDefaults:
    lists = list(Checklist.objects.all())
    return DeclareDefaults(
        playbook_version_id=PlaybookVersion.objects.order_by("-number").values_list("pk", flat=True).first(),
        response_minutes=dict(SeverityLevel.objects.values_list("level", "response_minutes")),
        checklists={c.kind: list(c.items) for c in lists},
        checks={c.kind: dict(c.checks or {}) for c in lists},
    )


def response_time(severity: int) -> timedelta:
    return SeverityLevel.for_level(severity).response_time


def _lock(incident: Incident | int) -> Incident:
    pk = incident if isinstance(incident, int) else incident.pk
    return Incident.objects.select_for_update().get(pk=pk)


def _refuse_if_closed(incident: Incident) -> None:
    if incident.status == Status.CLOSED:
        raise ActionRefused(f"{incident.reference} is closed and read-only.")


def _clean_text(value: str, *, field: str, limit: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ActionRefused(f"{field} is required.")
    if len(value) > limit:
        raise ActionRefused(f"{field} is too long ({len(value)} characters, at most {limit}).")
    return value


def _username(user: Any) -> str:
    return user.get_username() if user is not None else ""


@transaction.atomic
def incident_declare(
    *,
    actor: User | None,
    title: str,
    incident_type: IncidentType,
    severity: int,
    description: str = "",
    affected_components: Iterable[str] = (),
    detected_at: datetime | None = None,
    decision_answers: dict[str, Any] | None = None,
    severity_reason: str = "",
    is_drill: bool = False,
    defaults: DeclareDefaults | None = None,
    signals: Iterable[tuple[str, dict[str, Any]]] = (),
) -> Incident:
    """Open an incident.

    1. Validate and compute the acknowledgement deadline from the severity's response time. A
       severity lower than the decision tree's suggestion needs `severity_reason`.
    2. Copy the playbook's checklists and the type's runbook onto the incident (a snapshot:
       later playbook edits never change what this incident shows).
    3. Record the declaration on the timeline, followed by the `signals` (message, data) that
       opened it, if any (as `incidents_record_signals` would, in the same INSERT).
    """
    defaults = defaults or declare_defaults()
    now = timezone.now()
    incident, declared = _prepare_declaration(
        actor=actor,
        title=title,
        incident_type=incident_type,
        severity=severity,
        description=description,
        affected_components=affected_components,
        detected_at=detected_at,
        decision_answers=decision_answers,
        severity_reason=severity_reason,
        is_drill=is_drill,
        defaults=defaults,
        now=now,
    )
    incident.save(force_insert=True)
    IncidentChecklistItem.objects.bulk_create(_checklist_items(incident, incident_type, defaults))
    timeline.record_many(incident, [declared, *_signal_events(signals, at=now)])
    return incident


@dataclass(frozen=True)
class Declaration:
    """One incident an alert opens (see `incidents_declare`)."""

    incident_type: IncidentType
    title: str
    severity: int
    description: str
    affected_components: list[str]
    detected_at: datetime
    signals: list[tuple[str, dict[str, Any]]]
    is_drill: bool = False  # a drill's simulated alert opens a drill incident


@transaction.atomic
def incidents_declare(
    *, declarations: list[Declaration], defaults: DeclareDefaults | None = None
) -> list[Incident]:
    """Open several incidents at once, declared by no one: alert routing's bursts. Each is exactly
    what `incident_declare` would open, in one INSERT for all the incidents, one for all their
    checklists and one for all their timeline events. Returns them in the given order."""
    defaults = defaults or declare_defaults()
    now = timezone.now()
    prepared = [
        _prepare_declaration(
            actor=None,
            title=d.title,
            incident_type=d.incident_type,
            severity=d.severity,
            description=d.description,
            affected_components=d.affected_components,
            detected_at=d.detected_at,
            decision_answers=None,
            severity_reason="",
            is_drill=d.is_drill,
            defaults=defaults,
            now=now,
        )
        for d in declarations
    ]
    incidents = Incident.objects.bulk_create([incident for incident, _ in prepared])
    IncidentChecklistItem.objects.bulk_create(
        item
        for incident, d in zip(incidents, declarations, strict=True)
        for item in _checklist_items(incident, d.incident_type, defaults)
    )
    timeline.record_many_incidents(
        {
            incident: [declared, *_signal_events(d.signals, at=now)]
            for (incident, declared), d in zip(prepared, declarations, strict=True)
        }
    )
    return incidents


def _prepare_declaration(
    *,
    actor: User | None,
    title: str,
    incident_type: IncidentType,
    severity: int,
    description: str,
    affected_components: Iterable[str],
    detected_at: datetime | None,
    decision_answers: dict[str, Any] | None,
    severity_reason: str,
    is_drill: bool,
    defaults: DeclareDefaults,
    now: datetime,
) -> tuple[Incident, dict[str, Any]]:
    """A declaration checked: the incident (not saved yet) and its DECLARED timeline event."""
    title = _clean_text(title, field="Title", limit=200)
    if severity not in Severity.values:
        raise ActionRefused(f"Unknown severity {severity!r}; choose SEV-1 to SEV-4.")
    below = _below_suggestion(decision_answers, severity, severity_reason)
    detected_at = detected_at or now
    if detected_at > now + timedelta(minutes=1):
        raise ActionRefused("Detection time cannot be in the future.")
    components = [c.strip()[:80] for c in affected_components if c and c.strip()]
    minutes = defaults.response_minutes.get(severity) or PLAYBOOK_LEVELS[severity][0]
    incident = Incident(
        title=title,
        description=description.strip(),
        affected_components=components,
        incident_type=incident_type,
        severity=severity,
        status=Status.TRIAGE,
        decision_answers=decision_answers,
        is_drill=is_drill,
        detected_at=detected_at,
        declared_by=actor if getattr(actor, "pk", None) else None,
        ack_due_at=detected_at + timedelta(minutes=minutes),
        playbook_version_id=defaults.playbook_version_id,
    )
    data: dict[str, Any] = {
        "type": incident_type.slug,
        "components": components,
        "decision": decision_answers,
    }
    if below:
        data["below_suggestion"] = below
    declared = {
        "kind": EventKind.DECLARED,
        "actor": actor,
        "new": incident.get_severity_display(),
        "message": title,
        "data": data,
        "at": now,
    }
    return incident, declared


def _below_suggestion(answers: dict[str, Any] | None, severity: int, reason: str) -> dict[str, Any] | None:
    """{"suggested", "reason"} when `severity` is lower than the decision tree suggested (a reason is
    then required), else None."""
    suggested = suggested_severity(answers)
    if suggested is None or severity <= suggested:
        return None
    reason = _clean_text(reason, field="Reason", limit=MAX_REASON, required=False)
    if not reason:
        raise ActionRefused(below_suggestion_message(severity, suggested))
    return {"suggested": suggested, "reason": reason}


def _checklist_items(
    incident: Incident, incident_type: IncidentType, defaults: DeclareDefaults
) -> list[IncidentChecklistItem]:
    templates = dict(defaults.checklists)
    templates[ChecklistKind.RUNBOOK] = list(incident_type.runbook_steps)
    return [
        IncidentChecklistItem(
            incident=incident,
            kind=kind,
            position=i,
            text=str(text)[:300],
            fact_name=defaults.checks.get(kind, {}).get(str(text), "")[:40],
        )
        for kind in ChecklistKind.values
        for i, text in enumerate(templates.get(kind, []))
    ]


def _signal_events(entries: Iterable[tuple[str, dict[str, Any]]], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"kind": EventKind.SIGNAL, "message": message[:2000], "data": data, **extra}
        for message, data in entries
    ]


@transaction.atomic
def incident_acknowledge(*, incident: Incident | int, actor: User) -> Incident:
    """Acknowledge once; a second acknowledgement changes nothing. A late one records the breach."""
    incident = _lock(incident)
    _refuse_if_closed(incident)
    if incident.acknowledged_at is not None:
        return incident
    now = timezone.now()
    incident.acknowledged_at = now
    incident.acknowledged_by = actor  # type: ignore[assignment]
    fields = ["acknowledged_at", "acknowledged_by"]
    data: dict[str, Any] = {"response_seconds": int((now - incident.detected_at).total_seconds())}
    if now > incident.ack_due_at and incident.sla_breached_at is None:
        incident.sla_breached_at = now
        fields.append("sla_breached_at")
        data["sla_breached"] = True
    incident.save(update_fields=fields)
    timeline.record(
        incident, kind=EventKind.ACKNOWLEDGED, actor=actor, new=_username(actor), data=data, at=now
    )
    return incident


def _as_was(incident: Incident, status: str) -> Incident:
    """The incident as it stood before this change (its status then), for the rules about it."""
    return Incident(pk=incident.pk, status=status, monitoring_until=incident.monitoring_until)


@transaction.atomic
def incident_change_status(
    *,
    incident: Incident | int,
    actor: User | None,
    to_status: str,
    from_status: str | None = None,
    override_reason: str = "",
    why: str = "",
) -> Incident:
    """Move along the lifecycle table. `from_status` is what the person saw: if the incident moved
    meanwhile, a repeat of the same move changes nothing and any other move is refused. `why` says
    what moved it when nobody did (a re-trigger during monitoring).

    Entering monitoring starts the severity's window (`monitoring_until`); reopening a resolved
    incident clears its acknowledgement (someone must take it again, within the response time)."""
    incident = _lock(incident)
    if incident.status == to_status:
        return incident
    if from_status and incident.status != from_status:
        raise ActionRefused(
            f"{incident.reference} is now {incident.get_status_display()} {SOMEONE_CHANGED_IT}"
        )
    override_reason = _clean_text(override_reason, field="Override reason", limit=MAX_REASON, required=False)
    check_transition(incident, to_status, override_reason=override_reason)
    from incidents.selectors import pre_recovery_complete

    now = timezone.now()
    old = incident.status
    incident.status = to_status
    data: dict[str, Any] = {}
    fields = ["status", "resolved_at", "closed_at", "monitoring_until"]
    if to_status == Status.RESOLVED:
        incident.resolved_at = now
        if override_reason and in_monitoring_window(_as_was(incident, old)):
            data["monitoring_override"] = override_reason
        if override_reason and incident.level.pre_recovery_required and not pre_recovery_complete(incident):
            data["pre_recovery_override"] = override_reason
    elif to_status == Status.CLOSED:
        incident.closed_at = now
    elif old == Status.RESOLVED:
        # Reopened: somebody must take it again (acknowledge, within the severity's response time),
        # and the escalation chain starts over.
        incident.resolved_at = None
        incident.acknowledged_at = incident.acknowledged_by = incident.sla_breached_at = None  # type: ignore[assignment]
        incident.ack_due_at = now + incident.level.response_time
        fields += ["acknowledged_at", "acknowledged_by", "sla_breached_at", "ack_due_at"]
        data["reopened"] = True
    if why:
        data["why"] = why
    if to_status == Status.MONITORING:
        incident.monitoring_until = now + timedelta(minutes=incident.level.monitoring_minutes)
        data["monitoring_until"] = incident.monitoring_until.isoformat()
    elif to_status != Status.RESOLVED:
        incident.monitoring_until = None
    incident.save(update_fields=fields)
    timeline.record(
        incident,
        kind=EventKind.STATUS_CHANGED,
        actor=actor,
        old=old,
        new=to_status,
        message=data.get("pre_recovery_override") or data.get("monitoring_override") or why,
        data=data,
        at=now,
    )
    return incident


@transaction.atomic
def incident_assign_commander(
    *, incident: Incident | int, actor: User, commander: User, from_commander: int | Unseen | None = UNSEEN
) -> Incident:
    """Make `commander` the incident commander and give them object permission to edit it.
    `from_commander` is the commander's id the person saw (None: none yet): if it changed meanwhile,
    the same choice changes nothing and another is refused."""
    incident = _lock(incident)
    _refuse_if_closed(incident)
    if incident.commander_id == commander.pk:
        return incident
    if from_commander is not UNSEEN and incident.commander_id != from_commander:
        now = incident.commander.get_username() if incident.commander else "nobody"
        raise ActionRefused(f"{incident.reference}'s commander is now {now} {SOMEONE_CHANGED_IT}")
    if not commander.is_active or not commander.has_perm("incidents.act_on_incident"):
        raise ActionRefused(
            f"{commander.get_username()} cannot command incidents (needs the responder role)."
        )
    previous = incident.commander
    if previous is not None:
        for perm in COMMANDER_PERMS:
            remove_perm(perm, previous, incident)
    for perm in COMMANDER_PERMS:
        assign_perm(perm, commander, incident)
    incident.commander = commander  # type: ignore[assignment]
    incident.save(update_fields=["commander"])
    timeline.record(
        incident,
        kind=EventKind.COMMANDER_ASSIGNED,
        actor=actor,
        old=_username(previous),
        new=_username(commander),
    )
    return incident


@transaction.atomic
def incident_change_severity(
    *,
    incident: Incident | int,
    actor: User | None,
    severity: int,
    reason: str,
    from_severity: int | None = None,
) -> Incident:
    """Change severity with a reason. Before acknowledgement the deadline follows the new severity.
    `from_severity` is what the person saw: if it changed meanwhile, the same change does nothing and
    another is refused. Lower than the decision tree's suggestion: the timeline row says so."""
    incident = _lock(incident)
    _refuse_if_closed(incident)
    if severity not in Severity.values:
        raise ActionRefused(f"Unknown severity {severity!r}; choose SEV-1 to SEV-4.")
    if incident.severity == severity:
        return incident
    if from_severity is not None and incident.severity != from_severity:
        raise ActionRefused(
            f"{incident.reference} is now {incident.get_severity_display()} {SOMEONE_CHANGED_IT}"
        )
    reason = _clean_text(reason, field="Reason", limit=MAX_REASON)
    below = _below_suggestion(incident.decision_answers, severity, reason)
    old = incident.get_severity_display()
    incident.severity = severity
    fields = ["severity"]
    if incident.acknowledged_at is None and incident.sla_breached_at is None:
        incident.ack_due_at = incident.detected_at + response_time(severity)
        fields.append("ack_due_at")
    incident.save(update_fields=fields)
    timeline.record(
        incident,
        kind=EventKind.SEVERITY_CHANGED,
        actor=actor,
        old=old,
        new=incident.get_severity_display(),
        message=reason,
        data={"below_suggestion": below} if below else None,
    )
    return incident


@transaction.atomic
def incident_add_note(*, incident: Incident | int, actor: User, text: str) -> Incident:
    incident = _lock(incident)
    _refuse_if_closed(incident)
    text = _clean_text(text, field="Note", limit=MAX_NOTE)
    timeline.record(incident, kind=EventKind.NOTE, actor=actor, message=text)
    return incident


@transaction.atomic
def incident_set_checklist_item(
    *, incident: Incident | int, actor: User, item_id: int, done: bool
) -> Incident:
    """Tick or untick one item. Setting (not toggling) makes a double click harmless."""
    incident = _lock(incident)
    _refuse_if_closed(incident)
    item = IncidentChecklistItem.objects.filter(incident=incident, pk=item_id).first()
    if item is None:
        raise ActionRefused("That checklist item does not belong to this incident.")
    if item.fact_name:
        raise ActionRefused(f"“{item.text}” is checked by the console itself, not ticked.")
    if item.done == done:
        return incident
    item.done_at = timezone.now() if done else None
    item.done_by = actor if done else None  # type: ignore[assignment]
    item.save(update_fields=["done_at", "done_by"])
    timeline.record(
        incident,
        kind=EventKind.CHECKLIST_ITEM,
        actor=actor,
        old="done" if not done else "open",
        new="done" if done else "open",
        message=item.text,
        data={"item": item.pk, "checklist": item.kind},
    )
    return incident


def _war_room(url: str) -> str:
    """A video call link: http(s) only (it goes into pages and messages as a link)."""
    url = (url or "").strip()
    if url and not url.lower().startswith(("https://", "http://")):
        raise ActionRefused("The war room must be an http(s) link.")
    if len(url) > 500:
        raise ActionRefused("The war room link is too long (at most 500 characters).")
    return url


@transaction.atomic
def incident_edit(
    *,
    incident: Incident | int,
    actor: User,
    title: str,
    description: str,
    affected_components: Iterable[str],
    war_room_url: str | None = None,
    seen: dict[str, Any] | None = None,
) -> Incident:
    """Edit the free-text fields. `seen` holds the values the person's form showed: a field they
    left as it was is not written (someone else's change to it stays), and a field they changed that
    someone else changed too is a conflict: refused, naming it, nothing written."""
    incident = _lock(incident)
    _refuse_if_closed(incident)
    new = {
        "title": _clean_text(title, field="Title", limit=200),
        "description": (description or "").strip(),
        "affected_components": _components(affected_components),
    }
    if war_room_url is not None:
        new["war_room_url"] = _war_room(war_room_url)
    if seen is not None:
        seen = {
            "title": (seen.get("title") or "").strip(),
            "description": (seen.get("description") or "").strip(),
            "affected_components": _components(seen.get("affected_components") or []),
            "war_room_url": (seen.get("war_room_url") or "").strip(),
        }
        new = {f: v for f, v in new.items() if v != seen[f]}
        conflicts = [f for f in new if getattr(incident, f) != seen[f] and getattr(incident, f) != new[f]]
        if conflicts:
            raise ActionRefused(
                " ".join(
                    f"Someone changed the {f.replace('_', ' ')} while you were editing "
                    f"(now: “{_shown(getattr(incident, f))}”)."
                    for f in conflicts
                )
                + " Nothing was saved; your text is below."
            )
    changes = {f: [getattr(incident, f), v] for f, v in new.items() if getattr(incident, f) != v}
    if not changes:
        return incident
    for name, (_, value) in changes.items():
        setattr(incident, name, value)
    incident.save(update_fields=list(changes))
    timeline.record(
        incident,
        kind=EventKind.EDITED,
        actor=actor,
        old=", ".join(changes),
        message="Changed " + ", ".join(f.replace("_", " ") for f in changes),
        data={"changes": changes},
    )
    return incident


def _components(values: Iterable[str]) -> list[str]:
    return [c.strip()[:80] for c in values if c and c.strip()]


def _shown(value: object, limit: int = 80) -> str:
    text = ", ".join(value) if isinstance(value, list) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@transaction.atomic
def incident_change_type(
    *, incident: Incident | int, actor: User, incident_type: IncidentType, from_type: str | None = None
) -> Incident:
    """Change the incident's type.

    1. Lock; a closed incident keeps its type; the same type changes nothing. `from_type` is the
       type's slug the person saw: if it changed meanwhile, another choice is refused.
    2. Append the new type's runbook steps the incident's runbook does not have yet, after the
       existing ones: what was ticked stays ticked, nothing is removed.
    3. One timeline row, with how many steps were added.
    """
    incident = _lock(incident)
    _refuse_if_closed(incident)
    if incident.incident_type_id == incident_type.pk:
        return incident
    current = incident.incident_type
    if from_type is not None and current.slug != from_type:
        raise ActionRefused(f"{incident.reference}'s type is now {current.name} {SOMEONE_CHANGED_IT}")
    existing = list(
        incident.checklist_items.filter(kind=ChecklistKind.RUNBOOK).values_list("position", "text")
    )
    have = {text for _, text in existing}
    position = max((p for p, _ in existing), default=-1) + 1
    added: list[IncidentChecklistItem] = []
    for step in incident_type.runbook_steps:
        text = str(step)[:300]
        if text in have:
            continue
        have.add(text)
        added.append(
            IncidentChecklistItem(
                incident=incident, kind=ChecklistKind.RUNBOOK, position=position + len(added), text=text
            )
        )
    IncidentChecklistItem.objects.bulk_create(added)
    incident.incident_type = incident_type
    incident.save(update_fields=["incident_type"])
    timeline.record(
        incident,
        kind=EventKind.TYPE_CHANGED,
        actor=actor,
        old=current.name,
        new=incident_type.name,
        data={"from": current.slug, "to": incident_type.slug, "added_steps": len(added)},
    )
    return incident


@transaction.atomic
def incident_record_event(
    *,
    incident: Incident | int,
    kind: str,
    actor: User | None,
    message: str,
    data: dict[str, Any] | None = None,
    old: object = "",
    new: object = "",
) -> Incident:
    """A row another app writes on an incident's timeline (a kill-switch change, a page, a message
    sent), through the one timeline writer. Also on closed incidents: the record matters most there."""
    incident = _lock(incident)
    timeline.record(incident, kind=kind, actor=actor, message=message, data=data, old=old, new=new)
    return incident


@transaction.atomic(savepoint=False)
def incidents_record_events(*, entries: dict[Incident, list[dict[str, Any]]]) -> list[TimelineEvent]:
    """Rows other apps write on several incidents at once (an escalation sweep's chunk): one INSERT
    and one version bump for all. The caller holds the incidents' locks."""
    return timeline.record_many_incidents(entries)


@transaction.atomic
def incident_record_sla_breach(*, incident_id: int, now: datetime | None = None) -> bool:
    """Record an unacknowledged incident's response-SLA breach, once. True if recorded now."""
    now = now or timezone.now()
    incident = _lock(incident_id)
    if (
        incident.acknowledged_at is not None
        or incident.sla_breached_at is not None
        or incident.ack_due_at > now
        or not incident.is_open
    ):
        return False
    incident.sla_breached_at = now
    incident.save(update_fields=["sla_breached_at"])
    overdue = int((now - incident.ack_due_at).total_seconds())
    timeline.record(
        incident,
        kind=EventKind.SLA_BREACHED,
        old=incident.ack_due_at.isoformat(),
        message=f"Not acknowledged within the {incident.get_severity_display()} response time.",
        data={"overdue_seconds": overdue},
        at=now,
    )
    return True


def sla_breaches_sweep(*, now: datetime | None = None) -> int:
    """Find due, unacknowledged incidents and record each breach. Idempotent; returns how many."""
    now = now or timezone.now()
    due = Incident.objects.filter(
        acknowledged_at__isnull=True, sla_breached_at__isnull=True, ack_due_at__lte=now
    ).values_list("pk", flat=True)
    return sum(incident_record_sla_breach(incident_id=pk, now=now) for pk in list(due[:500]))


@transaction.atomic(savepoint=False)
def incidents_record_signals(*, entries: dict[int, list[tuple[str, dict[str, Any]]]]) -> list[int]:
    """Alerts or health signals about incidents (firing again, resolved), several per incident, for
    several incidents at once (alert routing's batches): one lock query (in id order), one INSERT,
    one version bump. Closed incidents stay as they were closed: their signals are kept, but not
    written on their timeline. Returns the incidents written to."""
    locked = (
        Incident.objects.select_for_update().only("status", "version").filter(pk__in=entries).order_by("pk")
    )
    open_ = [i for i in locked if i.status != Status.CLOSED]
    timeline.record_many_incidents({i: _signal_events(entries[i.pk]) for i in open_})
    return [i.pk for i in open_]


def _retrigger_of(row: TimelineEvent) -> str:
    """What in this row re-triggers an incident under watch: a firing alert or signal on it, or a
    halt of the kill switch recorded on it (by the console, CDB's circuit breaker, or reconcile)."""
    data = row.data or {}
    if row.kind == EventKind.SIGNAL and data.get("status") == "firing":
        return f"re-triggered while monitoring: {row.message}"
    if row.kind == "kill_switch" and data.get("event") == "halted":
        return f"re-triggered while monitoring: {row.message}"
    return ""


def monitoring_retriggers(rows: list[TimelineEvent]) -> None:
    """The timeline listener of the monitoring window (playbook 7.4): a re-trigger sends an incident
    in monitoring back to mitigating, in the transaction that recorded it."""
    for row in rows:
        if row.incident.status != Status.MONITORING:
            continue
        why = _retrigger_of(row)
        if why:
            incident_change_status(
                incident=row.incident_id, actor=None, to_status=Status.MITIGATING, why=why[:500]
            )  # type: ignore[arg-type]
