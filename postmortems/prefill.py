"""What a new post-mortem starts with: the playbook template (section 8) filled from data.

- the header: date, severity, duration (detection to resolution), commander;
- the Timeline, from the incident's timeline (`HH:MM - what`), kept as generated on the post-mortem
  (`generated_timeline`) while the document holds the editable copy;
- the Impact: the time trading was halted, from the kill-switch audit (every halt → resume interval
  overlapping the incident, per target, clipped to the incident's window; a real incident leaves out
  the drill target), and the orders affected and exposure from the CDB `/status` snapshots on the
  incident's timeline when it has them (`status_snapshot`), else blank to fill;
- a security incident (its type's playbook section 6.4) gets the runbook's "detailed incident
  report": the template plus the security sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from incidents.models import Incident, TimelineEvent

SECTIONS = (
    "Summary",
    "Timeline",
    "Root Cause",
    "Impact",
    "What Went Well",
    "What Went Poorly",
    "Action Items",
    "Lessons Learned",
)
# Runbook 6.4's "detailed incident report": what a security incident's report adds.
SECURITY_SECTIONS = (
    "Scope of Breach",
    "Systems Isolated",
    "Evidence Preserved",
    "Credentials Rotated",
    "Escalation",
)
SECURITY_SECTION = "6.4"
# Rows that say nothing about the incident's course.
_SKIP_KINDS = {"delivery", "postmortem"}


def is_security(incident: Incident) -> bool:
    return incident.incident_type.playbook_section == SECURITY_SECTION


def sections_for(incident: Incident) -> tuple[str, ...]:
    if not is_security(incident):
        return SECTIONS
    at = SECTIONS.index("Action Items")
    return SECTIONS[:at] + SECURITY_SECTIONS + SECTIONS[at:]


def duration_text(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours {minutes} minutes"


def _event_text(event: TimelineEvent) -> str:
    text = " ".join(event.message.split())
    if not text and (event.old_value or event.new_value):
        text = f"{event.old_value} → {event.new_value}" if event.old_value else event.new_value
    who = f" ({event.actor.get_username()})" if event.actor_id and event.actor else ""
    return f"{event.label}{': ' + text if text else ''}{who}"


def timeline_text(incident: Incident) -> str:
    events = (
        TimelineEvent.objects.filter(incident=incident)
        .exclude(kind__in=_SKIP_KINDS)
        .select_related("actor")
        .order_by("created_at", "id")
    )
    lines = [f"- {timezone.localtime(e.created_at):%H:%M} - {_event_text(e)}" for e in events]
    return "\n".join(lines)


@dataclass(frozen=True)
class Interval:
    target: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def halted_intervals(incident: Incident, *, end: datetime | None = None) -> list[Interval]:
    """Every halt → resume interval of each target overlapping [detected, resolved], clipped to it.
    A halt's state is read from each audit row's `state_after`: a halted condition starts an interval,
    a trading one ends it, anything else (unknown, unreachable) changes nothing."""
    from killswitch.models import AuditRecord
    from killswitch.targets import all_targets

    start = incident.detected_at
    end = end or incident.resolved_at or timezone.now()
    excluded = {
        name
        for name, t in all_targets().items()
        if (t.drill and not incident.is_drill) or (t.production and incident.is_drill)
    }
    rows = (
        AuditRecord.objects.filter(created_at__lte=end)
        .exclude(target="")
        .exclude(target__in=excluded)
        .order_by("seq")
        .values_list("target", "created_at", "state_after")
    )
    open_since: dict[str, datetime] = {}
    found: list[Interval] = []
    for target, at, after in rows:
        condition = (after or {}).get("condition")
        if condition == "halted" and target not in open_since:
            open_since[target] = at
        elif condition == "trading" and target in open_since:
            found.append(Interval(target, open_since.pop(target), at))
    found += [Interval(target, since, end) for target, since in open_since.items()]
    clipped = [Interval(i.target, max(i.start, start), min(i.end, end)) for i in found]
    return sorted((i for i in clipped if i.end > i.start), key=lambda i: (i.target, i.start))


def halted_total(intervals: list[Interval]) -> int:
    """Seconds trading was halted on any target (overlapping intervals counted once)."""
    total, current_start, current_end = 0, None, None
    for i in sorted(intervals, key=lambda i: i.start):
        if current_end is None or i.start > current_end:
            if current_end is not None and current_start is not None:
                total += int((current_end - current_start).total_seconds())
            current_start, current_end = i.start, i.end
        else:
            current_end = max(current_end, i.end)
    if current_end is not None and current_start is not None:
        total += int((current_end - current_start).total_seconds())
    return total


def _counted(data: dict[str, Any]) -> int | None:
    """Orders the stack turned away so far: risk's `orders_blocked` plus execution's
    `stats.orders_rejected`, whichever the snapshot holds."""
    values = [data.get("orders_blocked"), (data.get("stats") or {}).get("orders_rejected")]
    numbers = [int(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(numbers) if numbers else None


def status_snapshot(incident: Incident) -> tuple[int | None, Decimal | None]:
    """(orders affected, exposure in USD) from the CDB `/status` snapshots on the incident's timeline
    (rows whose data holds risk's `risk_state`; detection.snapshots takes them at declaration and
    resolution). Exposure: the highest `total_exposure` seen. Orders affected: how much the blocked
    and rejected counters grew from the first snapshot to the last (a counter that went down, a
    service restarted, counts from zero); with one snapshot, what it says (execution's
    `orders_rejected`, else risk's `pending_orders`). (None, None) without any."""
    rows: list[Any] = list(
        TimelineEvent.objects.filter(incident=incident, data__has_key="risk_state")
        .order_by("id")
        .values_list("data", flat=True)
    )
    rows = [d for d in rows if isinstance(d, dict) and isinstance(d.get("risk_state"), dict)]
    if not rows:
        return None, None
    exposures = []
    for data in rows:
        try:
            value = data["risk_state"].get("total_exposure")
            if value is not None:
                exposures.append(Decimal(str(value)))
        except InvalidOperation:
            continue
    exposure = max(exposures) if exposures else None
    first, last = _counted(rows[0]), _counted(rows[-1])
    if len(rows) > 1 and first is not None and last is not None:
        return (last - first if last >= first else last), exposure
    data = rows[-1]
    orders = (data.get("stats") or {}).get("orders_rejected", data["risk_state"].get("pending_orders"))
    return (int(orders) if isinstance(orders, int | float) else None), exposure


def impact_lines(*, halted_seconds: int, orders: int | None, exposure: Decimal | None) -> str:
    halted = duration_text(halted_seconds) if halted_seconds else "0 minutes (trading was not halted)"
    return "\n".join(
        [
            f"- Trading halted for {halted}",
            f"- {orders if orders is not None else 'X'} orders affected",
            f"- {exposure if exposure is not None else 'X'} USD exposure during incident",
        ]
    )


def document(
    incident: Incident, *, timeline: str, halted_seconds: int, orders: int | None, exposure: Decimal | None
) -> str:
    end = incident.resolved_at or timezone.now()
    commander = incident.commander or incident.declared_by
    fill = {
        "Summary": "[1-2 sentence summary]",
        "Timeline": timeline or "- HH:MM - Event",
        "Root Cause": "[Detailed explanation]",
        "Impact": impact_lines(halted_seconds=halted_seconds, orders=orders, exposure=exposure),
        "What Went Well": "- Item 1",
        "What Went Poorly": "- Item 1",
        "Action Items": "(The incident's action items: the table is filled from them on export.)",
        "Lessons Learned": "[Key takeaways]",
    }
    head = [
        f"# Incident Post-Mortem: {incident.title}",
        "",
        f"**Date:** {timezone.localtime(incident.detected_at):%Y-%m-%d}",
        f"**Severity:** SEV-{incident.severity}",
        f"**Duration:** {duration_text((end - incident.detected_at).total_seconds())}",
        f"**Commander:** {commander.get_username() if commander else '[Name]'}",
    ]
    body = [f"\n## {name}\n{fill.get(name, '[To be written]')}" for name in sections_for(incident)]
    return "\n".join(head) + "\n" + "\n".join(body) + "\n"


def sections_in(text: str) -> list[str]:
    """The `## ` headings of a document, in order: what comments attach to."""
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ") and line[3:].strip()]
