"""The incident page's "Alerts and signals" panel."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    from detection.selectors import signals_for_incident

    return {"signals": signals_for_incident(incident)}


def register() -> None:
    panels.register(
        panels.Panel(id="incident-signals", template="detection/incident_signals.html", context=_context)
    )
