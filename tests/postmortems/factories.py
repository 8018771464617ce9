"""Post-mortems come from incidents resolving, through the services, as in production."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import time_machine
from django.db import transaction

from incidents import services as incident_services
from incidents.models import Incident, Status
from postmortems import review
from postmortems.models import PostMortem
from tests.incidents.factories import declare, make_user


def resolved(
    severity: int = 1,
    *,
    commander: Any = None,
    type_slug: str = "other",
    is_drill: bool = False,
    **kwargs: Any,
) -> Incident:
    """An incident taken to resolved (acknowledged, with a commander; resolved with an override)."""
    commander = commander or make_user(role="responder")
    incident = declare(commander, severity=severity, type_slug=type_slug, is_drill=is_drill, **kwargs)
    incident_services.incident_acknowledge(incident=incident, actor=commander)
    incident_services.incident_assign_commander(incident=incident, actor=commander, commander=commander)
    incident_services.incident_change_status(
        incident=incident, actor=commander, to_status=Status.INVESTIGATING
    )
    incident_services.incident_change_status(
        incident=incident, actor=commander, to_status=Status.RESOLVED, override_reason="test: resolved"
    )
    incident.refresh_from_db()
    return incident


def postmortem(severity: int = 1, **kwargs: Any) -> PostMortem:
    return PostMortem.objects.get(incident=resolved(severity, **kwargs))


def in_review(pm: PostMortem, *, reviewer: Any = None, approver: Any = None) -> tuple[Any, Any]:
    """Assign a reviewer and an approver (by a lead) and submit: (reviewer, approver)."""
    reviewer = reviewer or make_user(role="responder")
    approver = approver or make_user(role="lead")
    review.review_assign(document=pm, actor=make_user(role="lead"), reviewers=[reviewer], approver=approver)
    pm.refresh_from_db()
    review.review_submit(document=pm, actor=pm.author or make_user(role="lead"))
    pm.refresh_from_db()
    return reviewer, approver


def audit_change(target: str, condition: str, at: datetime) -> None:
    """A kill-switch audit row at `at` leaving `target` halted or trading."""
    from killswitch import audit
    from killswitch.models import Action

    action = Action.ACTIVATED if condition == "halted" else Action.RESUME_APPROVED
    with time_machine.travel(at, tick=False), transaction.atomic():
        audit.record(action=action, actor="test", target=target, after={"condition": condition})
