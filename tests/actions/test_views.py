"""Action item pages and forms: htmx and plain POST, permissions, the incident panel, the notice,
the metric."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from actions import services
from actions.models import ActionItem, ItemStatus
from console import metrics
from tests.actions.factories import action_item
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
YESTERDAY = timezone.localdate() - timedelta(days=1)


def test_a_responder_adds_an_item_from_the_incident_page_with_htmx(client, responder, incident):
    client.force_login(responder)
    page = client.get(reverse("incidents:detail", args=[incident.pk]))
    assert b'id="action-items"' in page.content and b"Add action item" in page.content
    response = client.post(
        reverse("actions:create", args=[incident.pk]),
        {"title": "Add a latency alert", "owner": responder.pk, "due": "2026-03-01", "origin": "incident"},
        **HX,
    )
    assert response.status_code == 200
    assert "action-items-changed" in response["HX-Trigger"]
    assert b'id="action-items"' in response.content and b"Add a latency alert" in response.content
    item = ActionItem.objects.get()
    assert (item.owner, item.due, item.created_by) == (responder, date(2026, 3, 1), responder)


def test_a_plain_post_adds_and_returns_to_a_safe_next_url(client, responder, incident):
    client.force_login(responder)
    url = reverse("actions:create", args=[incident.pk])
    back = reverse("actions:mine")
    response = client.post(url, {"title": "One", "origin": "postmortem", "next": back})
    assert response.status_code == 302 and response.url == back
    assert ActionItem.objects.get().origin == "postmortem"
    response = client.post(url, {"title": "Two", "next": "https://evil.example/phish"})
    assert response.url == reverse("incidents:detail", args=[incident.pk])
    assert ActionItem.objects.filter(title="Two", origin="incident").exists()


def test_an_invalid_item_shows_its_errors(client, responder, incident):
    client.force_login(responder)
    url = reverse("actions:create", args=[incident.pk])
    bad = {"title": "x", "tracker_url": "javascript:alert(1)"}
    response = client.post(url, bad, **HX)
    assert response.status_code == 422 and b"tracker_url" in response.content
    response = client.post(url, bad)
    assert response.status_code == 422 and b"New action item" in response.content
    assert not ActionItem.objects.exists()


def test_viewers_and_executives_read_but_do_not_add(client, viewer, executive, incident):
    action_item(incident=incident, title="Readable item")
    for user in (viewer, executive):
        client.force_login(user)
        page = client.get(reverse("incidents:detail", args=[incident.pk]))
        assert b"Readable item" in page.content and b"Add action item" not in page.content
        assert client.get(reverse("actions:index")).status_code == 200
        assert client.post(reverse("actions:create", args=[incident.pk]), {"title": "no"}).status_code == 403


def test_the_owner_may_change_the_status_of_their_own_item_whatever_their_role(client, viewer, incident):
    mine = action_item(incident=incident, owner=viewer)
    theirs = action_item(incident=incident)
    client.force_login(viewer)
    response = client.post(reverse("actions:status", args=[mine.pk]), {"status": "in_progress"}, **HX)
    assert response.status_code == 200 and b'data-status="in_progress"' in response.content
    assert "action-items-changed" in response["HX-Trigger"]
    assert client.post(reverse("actions:status", args=[theirs.pk]), {"status": "done"}).status_code == 403
    assert client.get(reverse("actions:edit", args=[mine.pk])).status_code == 403
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status) == (ItemStatus.IN_PROGRESS, ItemStatus.OPEN)


def test_a_plain_status_post_redirects_back(client, responder, incident):
    item = action_item(incident=incident)
    client.force_login(responder)
    nxt = reverse("incidents:detail", args=[incident.pk])
    response = client.post(reverse("actions:status", args=[item.pk]), {"status": "done", "next": nxt})
    assert response.status_code == 302 and response.url == nxt
    item.refresh_from_db()
    assert item.status == ItemStatus.DONE and item.completed_at is not None


def test_editing_an_item(client, responder, lead, incident):
    item = action_item(incident=incident, owner=responder)
    client.force_login(lead)
    url = reverse("actions:edit", args=[item.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"title": "Renamed", "owner": lead.pk, "due": "2026-05-01", "tracker_url": "https://t.example/2"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.title, item.owner, item.due, item.tracker_url) == (
        "Renamed",
        lead,
        date(2026, 5, 1),
        "https://t.example/2",
    )


def test_someone_without_a_role_sees_only_their_own_items(client, incident):
    norole = make_user()
    action_item(incident=incident, title="Someone else's")
    client.force_login(norole)
    assert client.get(reverse("actions:index")).status_code == 403
    response = client.get(reverse("actions:mine"))
    assert response.status_code == 200 and b"You own no action items" in response.content
    assert client.post(reverse("actions:create", args=[incident.pk]), {"title": "x"}).status_code == 404


def test_my_items_lists_open_first_and_flags_overdue(client, responder):
    late = action_item(owner=responder, title="Late one", due=YESTERDAY)
    finished = action_item(owner=responder, title="Finished one", due=YESTERDAY)
    services.action_item_set_status(item=finished, actor=responder, status=ItemStatus.DONE)
    action_item(owner=responder, title="Later one", due=YESTERDAY + timedelta(days=30))
    action_item(title="Not mine")
    client.force_login(responder)
    body = client.get(reverse("actions:mine")).content.decode()
    assert body.index("Late one") < body.index("Later one") < body.index("Finished one")
    assert "Not mine" not in body
    assert body.count('data-testid="overdue"') == 1
    assert f'id="action-item-{late.pk}" class="action-item overdue"' in body


def test_all_items_filter_by_status_owner_and_overdue(client, lead, responder):
    action_item(owner=responder, title="Responder late", due=YESTERDAY)
    action_item(owner=lead, title="Lead later", due=YESTERDAY + timedelta(days=9))
    done = action_item(owner=lead, title="Lead done")
    services.action_item_set_status(item=done, actor=lead, status=ItemStatus.DONE)
    client.force_login(lead)
    url = reverse("actions:index")

    def titles(**query):
        body = client.get(url, query, **HX).content.decode()
        return {t for t in ("Responder late", "Lead later", "Lead done") if t in body}

    assert titles() == {"Responder late", "Lead later"}
    assert titles(status="done") == {"Lead done"}
    assert titles(status="all", owner=lead.pk) == {"Lead later", "Lead done"}
    assert titles(overdue="on") == {"Responder late"}


def test_the_home_page_tells_the_owner_of_overdue_items(client, responder, viewer):
    action_item(owner=responder, due=YESTERDAY)
    action_item(owner=responder, due=YESTERDAY)
    client.force_login(responder)
    assert b"You have 2 overdue action items." in client.get(reverse("incidents:home")).content
    client.force_login(viewer)
    assert b"overdue action item" not in client.get(reverse("incidents:home")).content


def test_the_nav_links_to_my_action_items(client, viewer):
    client.force_login(viewer)
    assert reverse("actions:mine").encode() in client.get(reverse("incidents:home")).content


def test_the_overdue_metric_separates_drills(responder):
    action_item(incident=declare(responder), due=YESTERDAY)
    action_item(incident=declare(responder, is_drill=True), due=YESTERDAY, origin="drill")
    action_item(incident=declare(responder), due=YESTERDAY + timedelta(days=3))
    text = metrics.exposition().decode()
    assert 'cdb_console_action_items_overdue{drill="false",origin="incident"} 1.0' in text
    assert 'cdb_console_action_items_overdue{drill="true",origin="drill"} 1.0' in text
