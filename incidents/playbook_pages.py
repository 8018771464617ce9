"""The playbook's quarterly review where people see it: a notice on the home page and a date on the
console's calendar. (The reminder itself goes through the outbox: comms.review.)"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.urls import reverse
from django.utils import timezone

from console.calendar import Event
from console.notices import Notice

REVIEW_PERM = "incidents.review_playbook"
READ_PERM = "incidents.view_playbookversion"


def review_notice(user: Any) -> list[Notice]:
    """Those who may record the review see that it is due (from its due date on)."""
    from incidents.playbook import playbook_review_overdue

    if not user.has_perm(REVIEW_PERM):
        return []
    due = playbook_review_overdue()
    if due is None:
        return []
    return [
        Notice(
            "warning",
            f"Playbook review due since {due:%a %d %b %Y}: review it, then adopt a new version or record "
            "“reviewed, no change”.",
            reverse("incidents:playbook"),
            "Playbook",
        )
    ]


def review_events(start: datetime, end: datetime, user: Any) -> list[Event]:
    from incidents.playbook import playbook_review_due

    if not user.has_perm(READ_PERM):
        return []
    due = playbook_review_due()
    if due is None:
        return []
    at = timezone.make_aware(datetime.combine(due, time(9, 0)))
    if not start <= at < end:
        return []
    return [
        Event(
            kind="playbook-review",
            title="Playbook quarterly review due",
            start=at,
            url=reverse("incidents:playbook"),
            uid=f"playbook-review-{due.isoformat()}",
        )
    ]
