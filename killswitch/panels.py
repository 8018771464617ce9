"""The incident page's kill-switch control, in its header."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    """The target this incident acts on: production for a real incident, the drill target for a drill
    (None when no drill target is configured: the panel then offers no control)."""
    from killswitch.targets import target_for

    return {"target": target_for(is_drill=incident.is_drill)}


def register() -> None:
    panels.register(
        panels.Panel(
            id="killswitch-slot", template="killswitch/incident_panel.html", context=_context, slot="header"
        )
    )
