"""The incident page's kill-switch control, in its header."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    from killswitch.targets import all_targets

    production = next(iter(all_targets().values()))
    return {"target": production}


def register() -> None:
    panels.register(
        panels.Panel(
            id="killswitch-slot", template="killswitch/incident_panel.html", context=_context, slot="header"
        )
    )
