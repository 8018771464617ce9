"""The response-SLA clock as people read it: what is due and how urgent, or, once done, what was
measured. Pure: the page renders it, and static/js/console.js ticks it with the same wording and the
same thresholds (data attributes carry the deadline and the start)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from incidents.models import Incident

# Share of the response time left below which the clock turns amber, then red.
WARN_BELOW = 0.5
URGENT_BELOW = 0.1


@dataclass(frozen=True)
class Clock:
    # What it says, in parts ("acked in 4:12", "resolved in 1:02:33") a narrow screen may wrap between.
    parts: tuple[str, ...]
    # ok (green), warn (amber), urgent (red), overdue (red, blinking), done (met), late (met late)
    urgency: str
    # Set while it runs: the page's script counts down to `deadline` from `start`.
    deadline: datetime | None = None
    start: datetime | None = None
    title: str = ""

    @property
    def text(self) -> str:
        return " · ".join(self.parts)

    @property
    def running(self) -> bool:
        return self.deadline is not None


def format_duration(seconds: float) -> str:
    """m:ss, h:mm:ss, or Nd h:mm:ss, of whole seconds (rounded down), as console.js formats them."""
    total = max(0, math.floor(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def urgency(left: float, window: float) -> str:
    if left < 0:
        return "overdue"
    share = left / window if window > 0 else 0
    return "ok" if share > WARN_BELOW else "warn" if share >= URGENT_BELOW else "urgent"


def sla_clock(incident: Incident, now: datetime) -> Clock:
    """The clock for one incident at `now`."""
    if incident.acknowledged_at is not None:
        acked = format_duration((incident.acknowledged_at - incident.detected_at).total_seconds())
        late = incident.sla_breached_at is not None
        parts = [f"acked in {acked}" + (" (late)" if late else "")]
        if incident.resolved_at is not None:
            resolved = format_duration((incident.resolved_at - incident.detected_at).total_seconds())
            parts.append(f"resolved in {resolved}")
        return Clock(
            parts=tuple(parts),
            urgency="late" if late else "done",
            title=f"Acknowledged {incident.acknowledged_at:%Y-%m-%d %H:%M:%S %Z}, measured from detection",
        )
    if not incident.is_open:
        return Clock(parts=("never acknowledged",), urgency="late")
    left = (incident.ack_due_at - now).total_seconds()
    window = (incident.ack_due_at - incident.detected_at).total_seconds()
    text = f"ack due in {format_duration(left)}" if left >= 0 else f"ack overdue by {format_duration(-left)}"
    return Clock(
        parts=(text,),
        urgency=urgency(left, window),
        deadline=incident.ack_due_at,
        start=incident.detected_at,
        title=f"Acknowledge by {incident.ack_due_at:%Y-%m-%d %H:%M:%S %Z}",
    )
