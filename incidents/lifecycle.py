"""The incident state machine: which status may follow which, and the rules on the way.

    triage ─► investigating ─► mitigating ─► monitoring ─► resolved ─► closed
       │            ▲  │            ▲  │         │  │         │
       │            └──┼────────────┘  │         │  │         └─► investigating (reopen)
       └───────────────┴───────────────┴─────────┴──┴─► resolved

- triage: detected or declared, being assessed (decision tree, severity, commander).
- investigating: looking for the cause.  mitigating: applying a fix or workaround.
- monitoring: fix in place, watching for re-trigger (playbook 7.4: 30 minutes).
- resolved: impact over; the post-mortem clock runs.  closed: final, read-only.
"""

from __future__ import annotations

from django.utils import timezone

from console.errors import DomainError
from incidents.models import Incident, Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.TRIAGE: frozenset({Status.INVESTIGATING, Status.MITIGATING, Status.RESOLVED}),
    Status.INVESTIGATING: frozenset({Status.MITIGATING, Status.MONITORING, Status.RESOLVED}),
    Status.MITIGATING: frozenset({Status.INVESTIGATING, Status.MONITORING, Status.RESOLVED}),
    Status.MONITORING: frozenset({Status.INVESTIGATING, Status.MITIGATING, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.INVESTIGATING, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}

# Labels for the buttons that perform a transition, by target status.
ACTION_LABELS: dict[str, str] = {
    Status.INVESTIGATING: "Investigate",
    Status.MITIGATING: "Mitigating",
    Status.MONITORING: "Monitoring",
    Status.RESOLVED: "Resolve",
    Status.CLOSED: "Close",
}


class ActionRefused(DomainError):
    """An action the rules refuse; the message says what to do instead. Nothing was changed."""


def allowed_targets(status: str) -> list[str]:
    """Targets in lifecycle order, for rendering buttons."""
    return [s for s in Status.values if s in TRANSITIONS[status]]


def check_transition(
    incident: Incident, to_status: str, *, override_reason: str = "", pre_recovery_done: bool | None = None
) -> None:
    """Raise ActionRefused unless `incident` may move to `to_status` now. What a severity requires
    (a commander, the pre-recovery checklist) is the playbook's data: `incident.level`.
    `pre_recovery_done` saves the query when the caller already knows."""
    if to_status not in TRANSITIONS.get(incident.status, frozenset()):
        raise ActionRefused(f"{incident.get_status_display()} cannot move to {_label(to_status)}.")
    if incident.status == Status.TRIAGE:
        if incident.acknowledged_at is None:
            raise ActionRefused("Acknowledge the incident before it leaves triage.")
        if incident.commander_missing:
            raise ActionRefused(
                f"{incident.get_severity_display()} needs an incident commander before it leaves triage."
            )
    if to_status == Status.RESOLVED and not override_reason.strip():
        if in_monitoring_window(incident):
            until = timezone.localtime(incident.monitoring_until)
            raise ActionRefused(
                f"The monitoring window runs until {until:%H:%M %Z} (playbook 7.4): wait for it, or "
                "resolve with an override and a reason."
            )
        if incident.level.pre_recovery_required:
            if pre_recovery_done is None:
                from incidents.selectors import pre_recovery_complete

                pre_recovery_done = pre_recovery_complete(incident)
            if not pre_recovery_done:
                raise ActionRefused(
                    "Complete the pre-recovery checklist (the console checks some items itself), or "
                    "resolve with an override and a reason."
                )


def in_monitoring_window(incident: Incident) -> bool:
    """In monitoring, and its window (playbook 7.4: watch for a re-trigger) has not run out."""
    return (
        incident.status == Status.MONITORING
        and incident.monitoring_until is not None
        and timezone.now() < incident.monitoring_until
    )


def offered_moves(incident: Incident, *, pre_recovery_done: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """The moves a person may make now, as (status, button label), and why the others of the table
    are not offered (each reason once): a page offers only what the services would accept."""
    offered: list[tuple[str, str]] = []
    reasons: list[str] = []
    for status in allowed_targets(incident.status):
        try:
            check_transition(incident, status, pre_recovery_done=pre_recovery_done)
        except ActionRefused as exc:
            if str(exc) not in reasons:
                reasons.append(str(exc))
        else:
            offered.append((status, ACTION_LABELS[status]))
    return offered, reasons


def _label(status: str) -> str:
    return Status(status).label if status in Status.values else repr(status)
