"""The incident page's post-mortem panel: the post-mortem's state and link, or, where the playbook
makes one optional, a button to ask for it."""

from __future__ import annotations

from typing import Any

from incidents import panels
from incidents.models import Incident


def _context(incident: Incident, user: Any) -> dict[str, Any]:
    from incidents.models import Status
    from incidents.selectors import user_can
    from postmortems import selectors, services

    if incident.status not in (Status.RESOLVED, Status.CLOSED):
        # No query while the incident is open (the live page's budget): a post-mortem is written
        # once it resolves, and one kept through a reopen shows again then.
        return {"postmortem": None, "open": True, "incident": incident}
    pm = selectors.for_incident(incident.pk)
    required, hours = services.requirement_for(incident.severity)
    can_request = (
        pm is None
        and not incident.is_drill
        and required != "no"
        and incident.status in (Status.RESOLVED, Status.CLOSED)
        and user_can(user, "incidents.act_on_incident", incident)
    )
    return {
        "postmortem": pm,
        "required": required,
        "hours": hours,
        "can_request": can_request,
        "incident": incident,
    }


def register() -> None:
    panels.register(
        panels.Panel(
            id="incident-postmortem",
            template="postmortems/panel.html",
            context=_context,
            slot="side",
            order=60,
        )
    )
