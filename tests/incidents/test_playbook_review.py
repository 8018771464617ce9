"""The playbook's quarterly review: due 90 days after the last version or recorded review, a reminder
to its owner once per due date, a notice and a calendar date, and "reviewed, no change"."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from comms.review import playbook_owners, playbook_review_remind
from console import calendar
from incidents.models import PlaybookReview, PlaybookVersion
from incidents.playbook import (
    PlaybookError,
    current_version,
    playbook_adopt,
    playbook_review_due,
    playbook_review_record,
    read_playbook,
)
from notify.models import InboxItem, Message
from oncall.models import Duty
from tests.incidents.factories import make_user
from tests.oncall.factories import rotation

pytestmark = pytest.mark.django_db


def _adopted_on(day: datetime) -> None:
    PlaybookVersion.objects.update(created_at=day)


START = timezone.make_aware(datetime(2026, 1, 5, 10, 0))


def _reminders() -> list[str]:
    keys = Message.objects.filter(dedupe_key__startswith="playbook-review:").values_list(
        "dedupe_key", flat=True
    )
    return sorted(str(k) for k in keys)


def test_the_review_falls_due_90_days_after_the_last_version():
    _adopted_on(START)
    assert playbook_review_due() == START.date() + timedelta(days=90)


def test_the_owner_is_reminded_once_per_due_date(settings, lead):
    settings.PLAYBOOK_OWNER = lead.username
    lead.email = "lead@example.com"
    lead.save()
    _adopted_on(START)
    due = START.date() + timedelta(days=90)
    with time_machine.travel(START + timedelta(days=89), tick=False):
        assert playbook_review_remind() is False
    with time_machine.travel(START + timedelta(days=90), tick=False):
        assert playbook_review_remind() is True
        assert playbook_review_remind() is False
    with time_machine.travel(START + timedelta(days=100), tick=False):
        assert playbook_review_remind() is False  # still overdue: no second reminder
    assert _reminders() == [f"playbook-review:{due.isoformat()}:{lead.pk}:email"]
    [inbox] = InboxItem.objects.filter(user=lead, dedupe_key__startswith="playbook-review:")
    assert inbox.title == f"Playbook review due {due:%d %b %Y}"

    # "Reviewed, no change" moves the next due date 90 days on; that date reminds once again.
    with time_machine.travel(START + timedelta(days=101), tick=False):
        playbook_review_record(actor=lead, note="Checked against the quarter's incidents")
    next_due = START.date() + timedelta(days=191)
    assert playbook_review_due() == next_due
    with time_machine.travel(START + timedelta(days=191), tick=False):
        assert playbook_review_remind() is True
        assert playbook_review_remind() is False
    assert len(_reminders()) == 2


def test_a_new_version_moves_the_review_too(lead):
    _adopted_on(START)
    document = read_playbook()
    document["severities"][3]["response_minutes"] = 720
    with time_machine.travel(START + timedelta(days=40), tick=False):
        playbook_adopt(document=document, note="SEV-4 in 12 h", actor=lead, source="admin")
    assert playbook_review_due() == START.date() + timedelta(days=130)


def test_without_a_named_owner_the_tech_lead_on_call_is_reminded_else_every_lead(settings, lead):
    settings.PLAYBOOK_OWNER = ""
    other_lead = make_user(role="lead")
    assert {u.pk for u in playbook_owners()} == {lead.pk, other_lead.pk}
    tech = make_user(role="lead", username="tech")
    yesterday = (timezone.now() - timedelta(days=1)).date()
    rotation(tech, duty=Duty.TECH_LEAD, effective_from=yesterday, handoff_weekday=None)
    assert playbook_owners() == [tech]
    settings.PLAYBOOK_OWNER = "nobody-by-that-name"
    assert playbook_owners() == [tech]


def test_recording_a_review_twice_the_same_day_records_it_once(lead):
    first = playbook_review_record(actor=lead)
    assert playbook_review_record(actor=lead) == first
    assert PlaybookReview.objects.count() == 1 and first.version == current_version()


def test_no_version_no_review():
    PlaybookVersion.objects.all().delete()
    assert playbook_review_due() is None
    with pytest.raises(PlaybookError):
        playbook_review_record(actor=None)


def test_a_lead_records_the_review_from_the_playbook_page(client, lead, viewer):
    _adopted_on(START)
    client.force_login(viewer)
    assert client.post(reverse("incidents:playbook_review")).status_code == 403
    assert b"Reviewed, no change" not in client.get(reverse("incidents:playbook")).content
    client.force_login(lead)
    home = client.get(reverse("incidents:home")).content.decode()
    assert "Playbook review due since" in home
    page = client.get(reverse("incidents:playbook")).content.decode()
    assert 'data-testid="review-due"' in page and "Reviewed, no change" in page
    response = client.post(reverse("incidents:playbook_review"), {"note": "fine"}, follow=True)
    assert "Review recorded: no change" in response.content.decode()
    assert PlaybookReview.objects.get().reviewed_by == lead
    assert "Playbook review due since" not in client.get(reverse("incidents:home")).content.decode()


def test_the_viewers_home_shows_no_review_notice(client, viewer):
    _adopted_on(START)
    client.force_login(viewer)
    assert "Playbook review due" not in client.get(reverse("incidents:home")).content.decode()


def test_the_due_date_is_on_the_calendar(viewer, norole):
    _adopted_on(START)
    due = START + timedelta(days=90)
    events = calendar.events(
        due - timedelta(days=1), due + timedelta(days=1), viewer, kinds=["playbook-review"]
    )
    assert [(e.title, e.start.date()) for e in events] == [("Playbook quarterly review due", due.date())]
    assert (
        calendar.events(due - timedelta(days=1), due + timedelta(days=1), norole, kinds=["playbook-review"])
        == []
    )


def test_the_sweep_task_records_its_heartbeat():
    from comms import tasks
    from console.models import Heartbeat

    assert tasks.remind_playbook_review.apply().get() is False
    assert Heartbeat.objects.get(name="playbook review").last_seen is not None
