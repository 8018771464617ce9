"""The incident page's communication panels: every message with its delivery state (live), and the
compose form (rendered once, so a poll never wipes what someone is typing)."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident


def _messages(incident: Incident, user: Any) -> dict[str, Any]:
    from comms.models import UpdateClock
    from notify.selectors import messages_for_incident

    clock = UpdateClock.objects.filter(incident=incident).values_list("due_at", flat=True).first()
    return {"messages": messages_for_incident(incident.pk), "next_update": clock}


def _compose(incident: Incident, user: Any) -> dict[str, Any]:
    from comms import forms
    from incidents.selectors import user_can

    can = incident.status != "closed" and user_can(user, "incidents.act_on_incident", incident)
    return {"form": forms.ComposeForm() if can else None}


def register() -> None:
    panels.register(
        panels.Panel(
            id="incident-compose",
            template="comms/compose.html",
            context=_compose,
            slot="side",
            order=40,
            live=False,
        )
    )
    panels.register(
        panels.Panel(
            id="incident-messages", template="comms/messages.html", context=_messages, slot="side", order=50
        )
    )
