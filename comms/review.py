"""The playbook's quarterly review reminder (its due date and the review itself: incidents.playbook).

The reminder goes to the playbook's owner: the user named by PLAYBOOK_OWNER (a username), else
whoever holds the tech-lead duty of the on-call rota at the time, else every active lead. It is sent
once per due date: inserting the due date's PlaybookReviewReminder row is the claim, in the
transaction that puts the reminders in the outbox, so a repeated or concurrent sweep, or a worker that
dies half-way, never sends it twice or loses it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from incidents.models import PlaybookReviewReminder
from incidents.playbook import current_version, playbook_review_overdue
from notify import services as notify
from oncall import selectors as oncall
from oncall.models import Duty


def playbook_owners(at: datetime | None = None) -> list[Any]:
    User = get_user_model()
    if settings.PLAYBOOK_OWNER:
        named = User.objects.filter(username=settings.PLAYBOOK_OWNER, is_active=True).first()
        if named is not None:
            return [named]
    holders = oncall.on_call(Duty.TECH_LEAD, at)
    if holders:
        return holders
    return list(User.objects.filter(groups__name="lead", is_active=True).distinct().order_by("username"))


def playbook_review_remind(*, now: datetime | None = None) -> bool:
    """Remind the playbook's owner that the quarterly review is due, once per due date. True if sent
    now."""
    now = now or timezone.now()
    due = playbook_review_overdue(timezone.localdate(now))
    if due is None:
        return False
    try:
        with transaction.atomic():
            PlaybookReviewReminder.objects.create(due=due, sent_at=now)
            _send(due, now)
    except IntegrityError:
        return False  # claimed by another sweep (or already sent for this due date)
    return True


def _send(due: Any, now: datetime) -> None:
    version = current_version()
    link = settings.CONSOLE_URL.rstrip("/") + reverse("incidents:playbook")
    title = f"Playbook review due {due:%d %b %Y}"
    body = (
        f"The incident response playbook (version {version.number if version else '?'}) is due for its "
        f"quarterly review on {due:%a %d %b %Y}. Review it, then adopt a new version or record "
        f"“reviewed, no change”: {link}"
    )
    outgoing = []
    for owner in playbook_owners(now):
        key = f"playbook-review:{due.isoformat()}:{owner.pk}"
        notify.inbox_deliver(user=owner, title=title, body=body, kind="reminder", dedupe_key=key, now=now)
        outgoing += notify.person_outgoing(
            user=owner, title=title, body=body, kind="reminder", dedupe_key=key
        )
    notify.messages_enqueue(outgoing, now=now)
