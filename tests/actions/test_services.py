"""Action items: creating, editing, status changes, their timeline rows, and the overdue reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import transaction

from actions import services
from actions.models import ActionItem, ItemStatus, Origin
from incidents import services as incident_services
from incidents.models import Status, TimelineEvent
from notify.models import InboxItem, Message
from tests.actions.factories import action_item
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_creating_an_item_records_it_on_the_incident_timeline(incident, responder):
    owner = make_user(role="responder", email="owner@example.com")
    item = services.action_item_create(
        incident=incident,
        actor=responder,
        title="  Add an alert on   order latency ",
        owner=owner,
        due=date(2026, 3, 1),
        tracker_url="https://tracker.example/CDB-1",
    )
    assert (item.title, item.owner, item.status, item.origin) == (
        "Add an alert on order latency",
        owner,
        ItemStatus.OPEN,
        Origin.INCIDENT,
    )
    row = TimelineEvent.objects.filter(incident=incident, kind=services.KIND_ADDED).get()
    assert row.data == {"action_item": item.pk, "origin": "incident"}
    assert "Add an alert on order latency" in row.message and "owner " + owner.username in row.message


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://tracker.example/x", "not a url"])
def test_a_tracker_link_must_be_http_or_https(incident, responder, url):
    with pytest.raises(services.ActionItemError, match="http"):
        services.action_item_create(incident=incident, actor=responder, title="x", tracker_url=url)
    assert not ActionItem.objects.exists()


def test_an_item_needs_a_title_and_a_known_origin(incident, responder):
    with pytest.raises(services.ActionItemError, match="title"):
        services.action_item_create(incident=incident, actor=responder, title="   ")
    with pytest.raises(services.ActionItemError, match="origin"):
        services.action_item_create(incident=incident, actor=responder, title="x", origin="meeting")


def test_updating_changes_only_the_fields_passed(responder):
    item = action_item(due=date(2026, 3, 1), tracker_url="https://t.example/1")
    other = make_user(role="lead")
    updated = services.action_item_update(item=item, actor=responder, owner=other)
    assert (updated.owner, updated.due, updated.tracker_url, updated.title) == (
        other,
        date(2026, 3, 1),
        "https://t.example/1",
        item.title,
    )
    cleared = services.action_item_update(item=item, actor=responder, owner=None, due=None)
    assert (cleared.owner, cleared.due) == (None, None)


def test_an_update_that_changes_nothing_writes_nothing(responder):
    item = action_item(due=date(2026, 3, 1))
    before = ActionItem.objects.get(pk=item.pk).updated_at
    services.action_item_update(item=item, actor=responder, title=item.title, due=date(2026, 3, 1))
    assert ActionItem.objects.get(pk=item.pk).updated_at == before


def test_status_changes_stamp_completion_and_reach_the_timeline(responder):
    item = action_item()
    done = services.action_item_set_status(item=item, actor=responder, status=ItemStatus.DONE)
    assert done.completed_at is not None
    again = services.action_item_set_status(item=item, actor=responder, status=ItemStatus.DONE)
    assert again.completed_at == done.completed_at  # a double click changes nothing
    reopened = services.action_item_set_status(item=item, actor=responder, status=ItemStatus.IN_PROGRESS)
    assert reopened.completed_at is None
    rows = TimelineEvent.objects.filter(incident=item.incident, kind=services.KIND_STATUS).order_by("pk")
    assert [(r.data["from"], r.data["to"]) for r in rows] == [("open", "done"), ("done", "in_progress")]


def test_an_unknown_status_is_refused(responder):
    with pytest.raises(services.ActionItemError):
        services.action_item_set_status(item=action_item(), actor=responder, status="forgotten")


def test_items_outlive_their_closed_incident(responder, lead):
    incident = declare(responder)
    item = services.action_item_create(incident=incident, actor=responder, title="Fix the runbook")
    incident_services.incident_acknowledge(incident=incident, actor=responder)
    for to in (Status.RESOLVED, Status.CLOSED):
        incident_services.incident_change_status(incident=incident, actor=responder, to_status=to)
    incident.refresh_from_db()
    assert incident.status == Status.CLOSED
    services.action_item_update(item=item, actor=responder, due=date(2026, 4, 1))
    services.action_item_set_status(item=item, actor=responder, status=ItemStatus.DONE)
    late = services.action_item_create(incident=incident, actor=responder, title="Found later")
    assert late.pk and TimelineEvent.objects.filter(incident=incident, kind=services.KIND_STATUS).exists()


# --- Reminders ----------------------------------------------------------------------------


def _reminders(item: ActionItem) -> list[Message]:
    return list(Message.objects.filter(dedupe_key__startswith=f"action-item-overdue:{item.pk}:"))


def test_an_overdue_item_reminds_its_owner_once_per_due_date(incident, responder):
    owner = make_user(role="responder", email="owner@example.com")
    item = services.action_item_create(
        incident=incident, actor=responder, title="Rotate the key", owner=owner, due=date(2026, 3, 3)
    )
    with time_machine.travel(MONDAY, tick=False):  # due tomorrow
        assert services.action_items_remind_overdue() == 0
    with time_machine.travel(MONDAY + timedelta(days=1), tick=False):  # due today: not overdue yet
        assert services.action_items_remind_overdue() == 0
    with time_machine.travel(MONDAY + timedelta(days=2), tick=False):
        assert services.action_items_remind_overdue() == 1
        assert services.action_items_remind_overdue() == 0
    with time_machine.travel(MONDAY + timedelta(days=8), tick=False):
        assert services.action_items_remind_overdue() == 0
    [message] = _reminders(item)
    assert message.address == "owner@example.com" and message.dedupe_key.endswith(":2026-03-03:email")
    assert "Rotate the key" in message.body and incident.reference in message.body
    assert (
        InboxItem.objects.filter(user=owner, dedupe_key=f"action-item-overdue:{item.pk}:2026-03-03").count()
        == 1
    )

    # A new due date gets its own reminder, once.
    services.action_item_update(item=item, actor=responder, due=date(2026, 3, 10))
    with time_machine.travel(MONDAY + timedelta(days=9), tick=False):
        assert services.action_items_remind_overdue() == 1
        assert services.action_items_remind_overdue() == 0
    assert sorted(m.dedupe_key for m in _reminders(item)) == [
        f"action-item-overdue:{item.pk}:2026-03-03:email",
        f"action-item-overdue:{item.pk}:2026-03-10:email",
    ]
    # Moving the date back to one already reminded sends nothing new (the outbox's dedupe key).
    services.action_item_update(item=item, actor=responder, due=date(2026, 3, 3))
    with time_machine.travel(MONDAY + timedelta(days=11), tick=False):
        services.action_items_remind_overdue()
    assert len(_reminders(item)) == 2


def test_finished_unowned_or_undated_items_are_not_reminded(incident, responder):
    owner = make_user(role="responder", email="o@example.com")
    done = action_item(incident=incident, owner=owner, due=date(2026, 3, 1))
    services.action_item_set_status(item=done, actor=responder, status=ItemStatus.WONT_DO)
    action_item(incident=incident, owner=None, due=date(2026, 3, 1))
    action_item(incident=incident, owner=owner, due=None)
    with time_machine.travel(MONDAY + timedelta(days=30), tick=False):
        assert services.action_items_remind_overdue() == 0
    assert not Message.objects.filter(dedupe_key__startswith="action-item-overdue:").exists()


def test_a_claim_that_never_commits_leaves_the_item_to_the_next_sweep(incident):
    """The claim and the reminder commit together: a worker dying in between leaves neither."""
    owner = make_user(role="responder", email="o@example.com")
    item = action_item(incident=incident, owner=owner, due=date(2026, 3, 1))

    class Died(Exception):
        pass

    with time_machine.travel(MONDAY, tick=False):
        with pytest.raises(Died), transaction.atomic():
            assert services.action_items_remind_overdue() == 1
            raise Died
        item.refresh_from_db()
        assert item.reminded_due is None and not _reminders(item)
        assert services.action_items_remind_overdue() == 1
    item.refresh_from_db()
    assert item.reminded_due == date(2026, 3, 1) and len(_reminders(item)) == 1


def test_the_task_records_its_heartbeat():
    from actions import tasks
    from console.models import Heartbeat

    assert tasks.remind_overdue.apply().get() == 0
    beat = Heartbeat.objects.get(name=tasks.JOB)
    assert beat.last_seen is not None and not beat.last_error
