"""The incident page's action items panel (rendered once: it holds a form someone may be typing in)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from incidents import panels
from incidents.models import Incident


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    from actions.selectors import action_items_for_incident

    return {
        "items": action_items_for_incident(incident),
        "origin": "drill" if incident.is_drill else "incident",
        "next": reverse("incidents:detail", args=[incident.pk]),
    }


def register() -> None:
    panels.register(
        panels.Panel(
            id="action-items",
            template="actions/incident_panel.html",
            context=_context,
            slot="main",
            order=60,
            live=False,
        )
    )
