"""The incident page's escalation panel: the chain's done steps, the next one and when."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    from escalation.services import chain_for

    chain = chain_for(incident)
    pending = [s for s in chain if s.state == "pending"]
    return {"chain": chain, "next": pending[0] if pending else None}


def register() -> None:
    panels.register(
        panels.Panel(id="incident-escalation", template="escalation/panel.html", context=_context, order=20)
    )
