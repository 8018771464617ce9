"""A drill's response times, measured from its incident's timeline and the kill-switch audit of the
drill target (never typed in): to acknowledge, to halt, to confirmed halt, to approved resume, to
recover. Each counts from the drill's start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drills.models import MEASURES, Drill
from incidents.models import EventKind, Status, TimelineEvent


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    seconds: int | None  # None: did not happen (yet)
    target: int | None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "no target"
        if self.seconds is None:
            return "not reached"
        return "pass" if self.seconds <= self.target else "fail"


def moments(drill: Drill) -> dict[str, datetime | None]:
    """When each measured step happened (None: not yet)."""
    from killswitch.models import TIMELINE_KIND, Action, AuditRecord
    from killswitch.targets import drill_target

    found: dict[str, datetime | None] = dict.fromkeys(MEASURES)
    if drill.incident_id is None or drill.started_at is None:
        return found
    events = TimelineEvent.objects.filter(incident_id=drill.incident_id).order_by("id")
    ack = events.filter(kind=EventKind.ACKNOWLEDGED).values_list("created_at", flat=True).first()
    halted = (
        events.filter(kind=TIMELINE_KIND, data__event="halted").values_list("created_at", flat=True).first()
    )
    resolved = (
        events.filter(kind=EventKind.STATUS_CHANGED, new_value=Status.RESOLVED)
        .values_list("created_at", flat=True)
        .first()
    )
    found |= {"acknowledge": ack, "halt": halted, "recover": resolved}
    target = drill_target()
    if target is not None:
        audit = AuditRecord.objects.filter(target=target.name, created_at__gte=drill.started_at).order_by(
            "seq"
        )
        # The halt the console confirmed by reading the drill target back (the audit row is written
        # only then), and the resume a second person approved after it.
        confirmed = (
            audit.filter(action=Action.ACTIVATED, incident_id=drill.incident_id)
            .values_list("created_at", flat=True)
            .first()
        )
        found["confirmed_halt"] = confirmed
        if confirmed is not None:
            found["approved_resume"] = (
                audit.filter(action=Action.RESUME_APPROVED, created_at__gte=confirmed)
                .values_list("created_at", flat=True)
                .first()
            )
    return found


def measure(drill: Drill) -> dict[str, int | None]:
    start = drill.started_at
    return {
        key: (max(0, int((at - start).total_seconds())) if at is not None and start is not None else None)
        for key, at in moments(drill).items()
    }


def rows(drill: Drill) -> list[Row]:
    """Each measure that has a target or was measured, against its target: the snapshot taken at
    completion once the drill is completed, else measured now."""
    measured = drill.measured or measure(drill)
    targets = drill.drill_type.targets or {}
    return [
        Row(key, label, measured.get(key), targets.get(key))
        for key, label in MEASURES.items()
        if key in targets or measured.get(key) is not None
    ]
