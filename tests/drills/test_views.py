from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import time_machine
from django.urls import reverse

from console import calendar as console_calendar
from drills import services
from drills.models import Drill, Status
from oncall import services as oncall
from tests.drills.factories import drill, drill_type
from tests.incidents.factories import make_user

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_the_calendar_shows_drills_and_handoffs_each_in_its_colour_with_a_legend(client):
    from tests.oncall.factories import rotation

    viewer = make_user(role="viewer")
    rotation(effective_from=datetime(2026, 11, 30).date(), shift_hours=24)
    one = drill(at=datetime(2026, 12, 8, 10, tzinfo=UTC))
    client.force_login(viewer)
    page = client.get(reverse("drills:calendar"), {"date": "2026-12-01"}).content.decode()
    assert "December 2026" in page
    assert f'href="/drills/{one.pk}/"' in page
    assert "cal-drill" in page and "cal-handoff" in page
    legend = page.split('class="cal-legend"')[1].split("</ul>")[0]
    assert "Drills" in legend and "On-call handoffs" in legend
    assert 'draggable="true"' not in page  # a viewer moves nothing


@time_machine.travel(NOW, tick=False)
def test_htmx_navigation_swaps_only_the_calendar_and_plain_links_work_without_it(client):
    client.force_login(make_user(role="viewer"))
    url = reverse("drills:calendar")
    partial = client.get(url, {"date": "2027-01-01", "view": "month"}, headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<section id="calendar"')
    assert "January 2027" in partial.content.decode()
    full = client.get(url, {"date": "2027-01-04", "view": "week"}).content.decode()
    assert "<html" in full and "Week of 04 Jan 2027" in full
    assert 'href="?view=week&amp;date=2027-01-11"' in full


@time_machine.travel(NOW, tick=False)
def test_the_calendar_lists_every_registered_source():
    seen = []
    console_calendar.register("zz-test", "Test deadlines", lambda s, e, u: seen.append(1) or [])
    try:
        from drills import calendar

        grid = calendar.grid(view="month", anchor=NOW.date(), user=make_user(role="viewer"))
        assert "Test deadlines" in [source.label for _, source in grid["legend"]]
        assert seen
    finally:
        console_calendar._SOURCES.pop("zz-test")


@time_machine.travel(NOW, tick=False)
def test_a_lead_schedules_moves_by_the_drag_endpoint_and_cancels(client):
    lead = make_user(role="lead")
    client.force_login(lead)
    kind = drill_type()
    response = client.post(
        reverse("drills:new"), {"drill_type": kind.pk, "scheduled_for": "2026-12-10T14:00"}
    )
    assert response.status_code == 302
    made = Drill.objects.get(drill_type=kind, original_at=datetime(2026, 12, 10, 14, tzinfo=UTC))
    dragged = client.post(
        reverse("drills:move", args=[made.pk]),
        {"scheduled_for": "2026-12-11T14:00"},
        headers={"X-Drill-Drag": "1"},
    )
    assert dragged.status_code == 204
    made.refresh_from_db()
    assert (made.scheduled_for, made.moved) == (datetime(2026, 12, 11, 14, tzinfo=UTC), True)
    client.post(reverse("drills:cancel", args=[made.pk]), {"reason": "freeze"})
    made.refresh_from_db()
    assert made.status == Status.CANCELLED


@time_machine.travel(NOW, tick=False)
def test_the_programme_table_and_home_and_metrics_say_which_types_are_overdue(client, settings):
    settings.METRICS_TOKEN = "t"
    ran = NOW - timedelta(days=10)
    drill(drill_type("kill-switch-test"), at=ran, status=Status.COMPLETED, started_at=ran)
    drill(drill_type("failover-test"), at=NOW + timedelta(days=30))
    client.force_login(make_user(role="viewer"))
    table = client.get(reverse("drills:index")).content.decode()
    row = table.split('data-testid="programme-kill-switch-test"')[1].split("</tr>")[0]
    assert ran.strftime("%Y-%m-%d") in row and "overdue</span>" not in row
    assert "overdue</span>" in table.split('data-testid="programme-failover-test"')[1].split("</tr>")[0]
    home = client.get(reverse("incidents:home")).content.decode()
    assert "Drill overdue: Failover test" in home and "Drill overdue: Kill-switch test" not in home
    scrape = client.get("/metrics", headers={"Authorization": "Bearer t"}).content.decode()
    assert 'cdb_drills_overdue{type="kill-switch-test"} 0.0' in scrape
    assert 'cdb_drills_overdue{type="failover-test"} 1.0' in scrape


@time_machine.travel(NOW, tick=False)
def test_the_ics_feed_lists_my_drills_and_parses_strictly(client):
    me, other = make_user(role="responder"), make_user(role="responder")
    mine = drill_type("kill-switch-test")
    mine.participants.add(me)
    drill_type("failover-test").participants.add(other)
    services.drills_generate()
    cancelled = Drill.objects.filter(drill_type=mine).first()
    assert cancelled is not None
    services.drill_cancel(drill=cancelled, actor=make_user(role="lead"))
    _, token = oncall.calendar_feed_create(user=me)
    response = client.get(reverse("drills:ics", args=[token]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    body = response.content
    cal = icalendar.Calendar.from_ical(body)
    assert not cal.errors if hasattr(cal, "errors") else True
    events = list(cal.walk("VEVENT"))
    assert len(events) == 11  # the kill-switch test's year; none of the failover test's
    for event in events:
        assert not event.errors
        for name in ("UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "STATUS"):
            assert name in event, name
        assert event.decoded("DTSTART").tzinfo is not None and event.decoded(
            "DTSTART"
        ).utcoffset() == timedelta(0)
        assert str(event["SUMMARY"]).startswith("DRILL:")
    by_uid = {str(e["UID"]): e for e in events}
    assert str(by_uid[f"drill-{cancelled.pk}@cdb-console"]["STATUS"]) == "CANCELLED"
    # A second, independent parse: every content line unfolds to NAME[;params]:value, and the UIDs
    # stay the same between two reads.
    unfolded = body.decode().replace("\r\n ", "").split("\r\n")
    assert unfolded[0] == "BEGIN:VCALENDAR" and unfolded[-2] == "END:VCALENDAR"
    assert all(":" in line for line in unfolded if line)
    again = icalendar.Calendar.from_ical(client.get(reverse("drills:ics", args=[token])).content)
    assert {str(e["UID"]) for e in again.walk("VEVENT")} == set(by_uid)


def test_a_rotation_feed_token_or_a_revoked_one_opens_no_drills_feed(client):
    from tests.oncall.factories import rotation

    me = make_user(role="responder")
    feed, token = oncall.calendar_feed_create(user=me, rotation=rotation())
    assert client.get(reverse("drills:ics", args=[token])).status_code == 404
    feed, token = oncall.calendar_feed_create(user=me)
    oncall.calendar_feed_revoke(feed=feed, actor=me)
    assert client.get(reverse("drills:ics", args=[token])).status_code == 404
