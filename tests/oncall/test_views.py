"""On-call pages: leads keep the rota in the console, everyone sees it, calendars subscribe to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse
from icalendar import Calendar

from oncall.models import CalendarFeed, Duty, Override, Rotation
from tests.incidents.factories import make_user
from tests.oncall.factories import rotation

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 1, 13, 10, tzinfo=UTC)


def rotation_post(**overrides: str) -> dict[str, str]:
    data = {
        "name": "primary",
        "duty": Duty.ONCALL_ENGINEER,
        "time_zone": "Europe/Berlin",
        "effective_from": "2026-01-05",
        "handoff_time": "09:00",
        "handoff_weekday": "0",
        "shift_hours": "168",
        "members": "alice\nbob\n",
        "enabled": "on",
    }
    return data | overrides


def test_a_lead_creates_a_rotation_in_the_console(client, lead):
    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    client.force_login(lead)
    response = client.post(reverse("oncall:rotation_new"), rotation_post(members="alice\nnobody\n"))
    assert response.status_code == 422 and "No such user: nobody." in response.content.decode()
    response = client.post(reverse("oncall:rotation_new"), rotation_post())
    assert response.status_code == 302
    r = Rotation.objects.get()
    assert [m.user for m in r.members.order_by("position")] == [alice, bob]
    assert (r.time_zone, r.handoff_weekday, r.shift_hours) == ("Europe/Berlin", 0, 168)
    # Changing the order keeps the rotation and its name.
    client.post(reverse("oncall:rotation_edit", args=[r.pk]), rotation_post(members="bob\nalice"))
    assert [m.user for m in r.members.order_by("position")] == [bob, alice]


def test_a_member_without_a_role_is_refused_with_a_reason(client, lead):
    make_user(username="outsider")
    client.force_login(lead)
    response = client.post(reverse("oncall:rotation_new"), rotation_post(members="outsider"))
    assert response.status_code == 422 and "outsider cannot be on call" in response.content.decode()


def test_everyone_with_a_role_sees_who_is_on_call_and_only_leads_edit(client, viewer, lead):
    alice = make_user(role="responder", username="alice")
    rotation(alice, make_user(role="responder", username="bob"))
    with time_machine.travel(NOW, tick=False):
        client.force_login(viewer)
        page = client.get(reverse("oncall:index")).content.decode()
        assert 'data-duty="oncall_engineer"' in page and "<strong>bob</strong>" in page
        assert "New rotation" not in page and "Uncovered in the next 14 days" not in page
        assert client.get(reverse("oncall:rotation_new")).status_code == 403
        assert client.post(reverse("oncall:rotation_new"), rotation_post()).status_code == 403
        client.force_login(lead)
        page = client.get(reverse("oncall:index")).content.decode()
        assert (
            "New rotation" in page and "Uncovered in the next 14 days" in page
        )  # no tech lead, no executive


def test_a_lead_covers_a_shift(client, lead):
    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    r = rotation(alice, bob)
    client.force_login(lead)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("oncall:override_new"),
            {
                "rotation": r.pk,
                "user": alice.pk,
                "replaces": bob.pk,
                "starts_at": "2026-01-13T12:00",
                "ends_at": "2026-01-13T11:00",
            },
        )
        assert response.status_code == 422 and "Must be after the start." in response.content.decode()
        client.post(
            reverse("oncall:override_new"),
            {
                "rotation": r.pk,
                "user": alice.pk,
                "replaces": bob.pk,
                "starts_at": "2026-01-13T08:00",
                "ends_at": "2026-01-14T08:00",
            },
        )
        override = Override.objects.get()
        assert (override.user, override.replaces, override.created_by) == (alice, bob, lead)
        page = client.get(reverse("oncall:index")).content.decode()
        assert '<strong>alice</strong> <span class="tag">override</span>' in page
        client.post(reverse("oncall:override_delete", args=[override.pk]))
        assert not Override.objects.exists()


def test_the_coverage_warning_is_on_the_home_page_and_the_status_board_for_leads(client, lead, responder):
    with time_machine.travel(NOW, tick=False):
        client.force_login(lead)
        for url in (reverse("incidents:home"), reverse("detection:board")):
            page = client.get(url).content.decode()
            assert 'id="console-notices"' in page, url
            assert (
                "Nobody is on call as on-call engineer from Tue 13 Jan 10:00 to Tue 27 Jan 10:00 UTC." in page
            )
        client.force_login(responder)
        assert 'id="console-notices"' not in client.get(reverse("incidents:home")).content.decode()


def test_a_calendar_feed_lists_my_shifts_and_stops_when_revoked(client):
    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    rotation(alice, bob, time_zone="Europe/Berlin")
    client.force_login(alice)
    with time_machine.travel(NOW, tick=False):
        page = client.post(reverse("oncall:feeds"), {"rotation": ""}).content.decode()
        url = page.split('id="new-feed-url"')[0].rsplit('value="', 1)[1].split('"')[0]
        assert "/oncall/calendars/" in url and url.endswith(".ics")
        client.logout()  # calendar programs have no session
        response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "text/calendar; charset=utf-8"
    cal = Calendar.from_ical(response.content)
    events = [e for e in cal.walk("VEVENT")]
    assert events and all("alice" in str(e["SUMMARY"]) for e in events)
    assert {e.decoded("DTSTART").astimezone(UTC).hour for e in events} <= {7, 8}  # 09:00 Berlin
    assert len({str(e["UID"]) for e in events}) == len(events)
    # The token is stored as a digest only; revoking ends the link.
    feed = CalendarFeed.objects.get()
    assert url.rsplit("/", 1)[1].removesuffix(".ics") not in feed.token_digest
    client.force_login(bob)
    assert client.post(reverse("oncall:feed_revoke", args=[feed.pk])).status_code == 404  # not bob's
    client.force_login(alice)
    client.post(reverse("oncall:feed_revoke", args=[feed.pk]))
    client.logout()
    assert client.get(url).status_code == 404


def test_a_rotation_feed_lists_every_members_shifts(client):
    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    r = rotation(alice, bob)
    client.force_login(alice)
    with time_machine.travel(NOW, tick=False):
        page = client.post(reverse("oncall:feeds"), {"rotation": r.pk}).content.decode()
        url = page.split('id="new-feed-url"')[0].rsplit('value="', 1)[1].split('"')[0]
        body = client.get(url).content
    summaries = {
        str(e["SUMMARY"]).split(":")[1].split("·")[0].strip() for e in Calendar.from_ical(body).walk("VEVENT")
    }
    assert summaries == {"alice", "bob"}
    assert client.get(reverse("oncall:ics", args=["not-a-token"])).status_code == 404
