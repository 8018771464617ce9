"""In a real browser: a lead pages through the drill calendar (months, a week), schedules a drill,
drags it to another day, cancels another, then runs it as a kill-switch drill against the drill
target's temporary state file up to its review page; production's state file is never written."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from drills import services
from drills.models import Drill, Status
from tests.incidents.factories import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]


def _month(day: Any) -> str:
    return day.strftime("%B %Y")


def test_a_lead_schedules_moves_cancels_and_runs_a_kill_switch_drill_to_its_review(
    open_session: Any, ks_files: Any
) -> None:
    production = ks_files.production
    before = (production.read_bytes(), production.stat().st_mtime_ns)
    services.drills_generate()
    lead, approver = make_user(role="lead", username="lena"), make_user(role="lead", username="lars")
    session = open_session(lead)
    page = session.page
    today = timezone.localdate()

    # Navigation: this month, the next (htmx swaps the calendar and pushes the URL), a week.
    page.goto("/drills/calendar/")
    expect(page.get_by_test_id("cal-title")).to_have_text(_month(today))
    legend = page.locator(".cal-legend")
    expect(legend).to_contain_text("Drills")
    expect(legend).to_contain_text("On-call handoffs")
    page.evaluate("window.__marker = 1")
    page.get_by_test_id("cal-next").click()
    following = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    expect(page.get_by_test_id("cal-title")).to_have_text(_month(following))
    expect(page).to_have_url(re.compile(rf"date={following.isoformat()}"))
    assert page.evaluate("window.__marker") == 1, "the calendar reloaded the page instead of swapping"
    series = Drill.objects.filter(drill_type__slug="kill-switch-test").order_by("scheduled_for")
    first_next_month = next(d for d in series if timezone.localdate(d.scheduled_for).month == following.month)
    expect(page.locator(f"a.cal-event[href='/drills/{first_next_month.pk}/']")).to_have_count(1)
    page.get_by_test_id("cal-week").click()
    expect(page.get_by_test_id("cal-title")).to_contain_text("Week of")
    expect(page.locator("td.cal-day")).to_have_count(7)

    # Scheduling an extra kill-switch test two days from now.
    page.goto("/drills/")
    page.get_by_role("link", name="Schedule a drill").click()
    day = today + timedelta(days=2)
    page.locator("#id_drill_type").select_option(label="Kill-switch test")
    page.locator("#id_scheduled_for").fill(f"{day.isoformat()}T10:00")
    with page.expect_navigation(url=re.compile(r"/drills/calendar/\?date=")):
        page.get_by_test_id("schedule").click()
    expect(page.locator("#flash")).to_contain_text("scheduled for")
    made = Drill.objects.get(drill_type__slug="kill-switch-test", original_at__date=day, moved=False)
    event = page.locator(f"a.cal-event[href='/drills/{made.pk}/']")
    expect(page.locator(f"td[data-date='{day.isoformat()}']").locator(event)).to_have_count(1)

    # Moving it by drag and drop to the next day: that occurrence only.
    target_day = day + timedelta(days=1)
    if page.locator(f"td[data-date='{target_day.isoformat()}']").count() == 0:
        target_day = day - timedelta(days=1)
    page.drag_and_drop(f"a.cal-event[href='/drills/{made.pk}/']", f"td[data-date='{target_day.isoformat()}']")
    expect(
        page.locator(f"td[data-date='{target_day.isoformat()}'] a.cal-event[href='/drills/{made.pk}/']")
    ).to_have_count(1)
    made.refresh_from_db()
    assert (timezone.localdate(made.scheduled_for), made.moved) == (target_day, True)
    assert not Drill.objects.filter(moved=True).exclude(pk=made.pk).exists()

    # Cancelling the next month's occurrence from its page.
    page.goto(f"/drills/calendar/?date={following.isoformat()}")
    with page.expect_navigation(url=re.compile(rf"/drills/{first_next_month.pk}/$")):
        page.locator(f"a.cal-event[href='/drills/{first_next_month.pk}/']").click()
    page.locator("#id_reason").fill("Release freeze")
    with page.expect_navigation(url=re.compile(r"/drills/calendar/")):
        page.get_by_test_id("cancel-drill").click()
    expect(page.locator("#flash")).to_contain_text("Drill cancelled")
    expect(page.locator(f"a.cal-event[href='/drills/{first_next_month.pk}/']")).to_have_count(0)

    # Running the moved drill: its incident is a DRILL, its kill switch the drill target.
    page.goto(f"/drills/{made.pk}/")
    with page.expect_navigation(url=re.compile(r"/incidents/\d+/$")):
        page.get_by_test_id("start-drill").click()
    made.refresh_from_db()
    incident_url = f"/incidents/{made.incident_id}/"
    expect(page.locator("h1, header").filter(has_text="DRILL").first).to_be_visible()
    page.get_by_test_id("acknowledge").click()
    expect(page.locator("body")).to_contain_text(f"{lead.username} ·")
    with page.expect_navigation(url=re.compile(r"/killswitch/drill/activate/\?")):
        page.get_by_test_id("halt").click()
    page.locator("#id_message").fill("Kill-switch drill")
    with page.expect_navigation(url=re.compile(r"/killswitch/drill/activate/$")):
        page.get_by_test_id("halt-next").click()
    with page.expect_navigation(url=re.compile(rf"{re.escape(incident_url)}$")):
        page.get_by_test_id("halt-confirm").click()
    expect(page.locator("#flash")).to_contain_text("Trading halted on Drill.")
    assert "active" in ks_files.read("drill")
    page.goto(f"/killswitch/drill/resume/?incident={made.incident_id}")
    page.locator("#id_justification").fill("Drill: halt confirmed, resuming as rehearsed")
    with page.expect_navigation(url=re.compile(r"/killswitch/$")):
        page.get_by_test_id("request-resume").click()
    from killswitch.models import ResumeRequest

    request = ResumeRequest.objects.get(target="drill")
    second = open_session(approver).page
    second.goto("/killswitch/")
    with second.expect_navigation(url=re.compile(r"/killswitch/$")):
        second.get_by_test_id(f"approve-{request.pk}").click()
    expect(second.locator("#flash")).to_contain_text("Trading resumed on Drill.")

    # The review: each measured time against its target.
    page.goto(f"/drills/{made.pk}/review/")
    for key in ("acknowledge", "halt", "confirmed_halt", "approved_resume"):
        row = page.get_by_test_id(f"measure-{key}")
        expect(row).to_contain_text(re.compile(r"\d+ s"))
        expect(row.locator(".verdict")).to_have_text("pass")
    expect(page.get_by_test_id("measure-recover").locator(".verdict")).to_have_text("not reached")
    page.locator("#id_findings").fill("Halt and resume within targets.")
    page.locator("#id_complete").check()
    with page.expect_navigation(url=re.compile(rf"/drills/{made.pk}/review/$")):
        page.get_by_test_id("save-review").click()
    expect(page.get_by_test_id("drill-status")).to_have_text("Completed")
    assert session.problems.all() == []

    # Production's state file was never written.
    assert (production.read_bytes(), production.stat().st_mtime_ns) == before
    made.refresh_from_db()
    assert made.status == Status.COMPLETED and made.measured["approved_resume"] is not None
