"""The incident page's detection panels: "Alerts and signals", and CDB status (the snapshot owed to
an open incident, if one is waiting, and the button that asks for one now: detection.snapshots)."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident, Status


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    from detection.selectors import signals_for_incident

    return {"signals": signals_for_incident(incident)}


def status_context(incident: Incident, user: Any) -> dict[str, Any]:
    from detection import snapshots
    from incidents.selectors import user_can

    shown = (
        not incident.is_drill
        and incident.status not in (Status.RESOLVED, Status.CLOSED)
        and user_can(user, "incidents.act_on_incident", incident)
        and snapshots.status_urls()  # no service to ask (health polling off): no button
    )
    if not shown:
        return {"shown": False, "incident": incident}
    return {"shown": True, "incident": incident, "pending": snapshots.pending_request(incident)}


def register() -> None:
    panels.register(
        panels.Panel(id="incident-signals", template="detection/incident_signals.html", context=_context)
    )
    panels.register(
        panels.Panel(
            id="incident-cdb-status",
            template="detection/status_panel.html",
            context=status_context,
            slot="side",
            order=70,
            live=False,  # the snapshot itself arrives on the (live) timeline
        )
    )
