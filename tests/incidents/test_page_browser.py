"""The incident page at 3 a.m., in a real browser: what the first screen holds on a phone and on a
laptop (element boxes within the viewport, screenshots kept in test-results/), the SLA clock's
colours and words (the same from the server and from the script), the tab title, the actions
offered, refusals that go away, and the page without JavaScript.
"""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import FloatRect, Page, ViewportSize, expect

from incidents import services
from incidents.clocks import format_duration
from incidents.models import Incident, Severity, Status
from tests.browser import Session
from tests.incidents.factories import declare, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results"
PHONE = ViewportSize(width=390, height=844)
LAPTOP = ViewportSize(width=1440, height=900)
LIVE_MS = 3000


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def box(page: Page, selector: str) -> FloatRect:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not rendered"
    return found


def within_first_screen(page: Page, selector: str) -> FloatRect:
    """The element's box, asserted to lie wholly inside the viewport as the page first shows."""
    size = page.viewport_size
    assert size is not None
    b = box(page, selector)
    assert b["x"] >= 0 and b["x"] + b["width"] <= size["width"] + 0.5, f"{selector} overflows sideways: {b}"
    assert b["y"] >= 0 and b["y"] + b["height"] <= size["height"], f"{selector} is below the fold: {b}"
    return b


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert page.viewport_size is not None
    assert width <= page.viewport_size["width"], f"the page scrolls sideways ({width} px)"


def busy_incident(actor: Any, *, severity: int = Severity.SEV1, notes: int = 12) -> Incident:
    """An incident as it looks a few minutes in: detected 2 minutes ago, a dozen notes."""
    incident = declare(
        actor,
        severity=severity,
        title="cdb_execution restarting every 40 s, orders stuck",
        affected_components=["cdb_execution", "cdb_risk"],
        detected_at=timezone.now() - timedelta(minutes=2),
        type_slug="service-crash-loop",
    )
    for i in range(notes):
        services.incident_add_note(
            incident=incident,
            actor=actor,
            text=f"Observation {i + 1}: docker logs show OOM kill, restart {i}",
        )
    return incident


def open_page(
    open_session: Any, user: Any, incident: Incident, *, viewport: ViewportSize, **kw: Any
) -> Session:
    session: Session = open_session(user, **kw)
    session.page.set_viewport_size(viewport)
    session.page.goto(f"/incidents/{incident.pk}/")
    return session


# --- The first screen ---------------------------------------------------------------------------


def test_on_a_phone_the_header_banner_and_acknowledge_fit_the_first_screen(
    open_session: Any, responder: Any, ks_files: Any
) -> None:
    incident = busy_incident(responder)
    session = open_page(open_session, responder, incident, viewport=PHONE)
    page = session.page
    expect(page.locator("[data-testid=acknowledge]")).to_be_visible()
    screenshot(page, "incident-page-390x844")
    within_first_screen(page, "#killswitch-banner")
    header = within_first_screen(page, "#incident-header")
    within_first_screen(page, "[data-testid=sla]")
    ack = within_first_screen(page, "[data-testid=acknowledge]")
    assert ack["y"] >= header["y"] + header["height"] - 1, "Acknowledge comes after the header"
    assert ack["height"] >= 44, "a thumb-sized button"
    no_sideways_scroll(page)
    assert session.problems.all() == []


def test_on_a_laptop_the_timeline_is_the_main_column_with_actions_beside_it(
    open_session: Any, responder: Any, ks_files: Any
) -> None:
    incident = busy_incident(responder)
    services.incident_acknowledge(incident=incident, actor=responder)
    session = open_page(open_session, responder, incident, viewport=LAPTOP)
    page = session.page
    expect(page.locator("#timeline-list li.event")).to_have_count(14)
    screenshot(page, "incident-page-1440x900")
    within_first_screen(page, "#killswitch-banner")
    within_first_screen(page, "#incident-header")
    timeline = box(page, "#incident-timeline")
    actions = within_first_screen(page, "#incident-actions")
    # The timeline: the wider column, on the left, starting on the first screen with several events.
    assert timeline["y"] < LAPTOP["height"] / 2
    assert timeline["width"] > actions["width"]
    assert actions["x"] >= timeline["x"] + timeline["width"], "actions sit beside the timeline"
    events = page.locator("#timeline-list li.event")
    for i in range(6):
        within_first_screen(page, f"#timeline-list li.event >> nth={i}")
    assert box(page, "#timeline-list li.event >> nth=5")["x"] < actions["x"]
    # The forms are beside the timeline too, starting on the first screen.
    for form in ("#commander-form", "#severity-form"):
        within_first_screen(page, form)
        assert box(page, form)["x"] >= timeline["x"] + timeline["width"]
    assert events.count() == 14
    no_sideways_scroll(page)
    assert session.problems.all() == []


def test_a_resolved_incident_on_a_phone_shows_what_was_measured(
    open_session: Any, responder: Any, ks_files: Any
) -> None:
    incident = busy_incident(responder, severity=Severity.SEV3, notes=2)
    services.incident_acknowledge(incident=incident, actor=responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    page = open_page(open_session, responder, incident, viewport=PHONE).page
    clock = page.locator("[data-testid=sla] .sla")
    expect(clock).to_have_text(re.compile(r"^acked in 2:\d\d · resolved in 2:\d\d$"))
    expect(clock).not_to_have_attribute("data-deadline", re.compile(".*"))
    screenshot(page, "incident-page-resolved-390x844")
    within_first_screen(page, "[data-testid=sla]")
    for part in range(2):
        within_first_screen(page, f"[data-testid=sla] .sla-part >> nth={part}")
    no_sideways_scroll(page)


# --- The SLA clock ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes_ago", "urgency", "words"),
    [
        (2, "ok", r"ack due in 12:\d\d"),  # SEV-1: 15 minutes; 13 left is > 50 %
        (9, "warn", r"ack due in 5:\d\d"),
        (14, "urgent", r"ack due in 0:\d\d"),
        (20, "overdue", r"ack overdue by 5:\d\d"),
    ],
)
def test_the_clock_colours_by_urgency_and_says_what_is_due(
    open_session: Any, responder: Any, minutes_ago: int, urgency: str, words: str
) -> None:
    incident = declare(
        responder,
        severity=Severity.SEV1,
        detected_at=timezone.now() - timedelta(minutes=minutes_ago, seconds=5),
    )
    for javascript in (False, True):
        page = open_page(open_session, responder, incident, viewport=LAPTOP, javascript=javascript).page
        clock = page.locator("#incident-header .sla")
        expect(clock).to_have_text(re.compile(f"^{words}$"))
        expect(clock).to_have_class(re.compile(rf"\bsla-{urgency}\b"))
    if urgency == "overdue":
        assert clock.evaluate("el => getComputedStyle(el).animationName") != "none", "overdue blinks"


def test_an_overdue_clock_does_not_blink_for_reduced_motion(open_session: Any, responder: Any) -> None:
    incident = declare(responder, severity=Severity.SEV1, detected_at=timezone.now() - timedelta(minutes=30))
    session = open_session(responder)
    session.page.emulate_media(reduced_motion="reduce")
    session.page.goto(f"/incidents/{incident.pk}/")
    clock = session.page.locator("#incident-header .sla")
    expect(clock).to_have_class(re.compile(r"\bsla-overdue\b"))
    assert clock.evaluate("el => getComputedStyle(el).animationName") == "none"


def test_the_script_counts_in_the_servers_words(open_session: Any, responder: Any) -> None:
    incident = declare(responder, severity=Severity.SEV4)
    page = open_session(responder).page
    page.goto(f"/incidents/{incident.pk}/")
    samples = [0, 0.9, 1, 59, 60, 61, 599, 3599, 3600, 3661, 86399, 86400, 90061, 200000.5]
    scripted = page.evaluate("(xs) => xs.map((x) => window.consoleClock.format(x))", samples)
    assert scripted == [format_duration(x) for x in samples]
    # And the page's own clock, ticked by the script, reads as the server rendered it (24 h, SEV-4).
    expect(page.locator("#incident-header .sla")).to_have_text(re.compile(r"^ack due in 23:59:\d\d$"))


# --- Live: the tab title, offered actions, refusals that go away ---------------------------------


def test_the_tab_title_shows_severity_and_state_live(open_session: Any, responder: Any, viewer: Any) -> None:
    incident = declare(responder, severity=Severity.SEV2, title="Exchange API 502s")
    page = open_session(viewer).page
    page.goto(f"/incidents/{incident.pk}/")
    expect(page).to_have_title(f"SEV-2 · Triage, not acknowledged · INC-{incident.pk} Exchange API 502s")
    services.incident_acknowledge(incident=incident, actor=responder)
    expect(page).to_have_title(f"SEV-2 · Triage · INC-{incident.pk} Exchange API 502s", timeout=LIVE_MS)
    services.incident_change_severity(incident=incident, actor=responder, severity=1, reason="money at risk")
    services.incident_assign_commander(incident=incident, actor=responder, commander=responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.MITIGATING)
    expect(page).to_have_title(re.compile(r"^SEV-1 · Mitigating · "), timeout=LIVE_MS)


def test_only_the_actions_the_person_may_take_now_are_offered(open_session: Any, responder: Any) -> None:
    incident = declare(responder, severity=Severity.SEV1)
    page = open_session(responder).page
    page.goto(f"/incidents/{incident.pk}/")
    actions = page.locator("#incident-actions")
    expect(actions.locator("[data-testid=acknowledge]")).to_have_count(1)
    expect(actions.locator("[data-testid^=to-]")).to_have_count(0)  # nothing leaves triage unacknowledged
    page.locator("[data-testid=acknowledge]").click()
    # Acknowledged, but a SEV-1 needs a commander first: still no way out of triage, and it says why.
    expect(actions.locator("[data-testid=blocked]")).to_contain_text("needs an incident commander")
    expect(actions.locator("[data-testid^=to-]")).to_have_count(0)
    form = page.locator("#commander-form")
    form.locator("select[name=commander]").select_option(label="responder")
    form.get_by_role("button", name="Assign").click()
    expect(actions.locator("[data-testid=to-investigating]")).to_have_count(1)
    # Resolving a SEV-1 needs the pre-recovery checklist: not offered until it is complete.
    expect(actions.locator("[data-testid=to-resolved]")).to_have_count(0)
    expect(actions.locator("[data-testid=blocked]")).to_contain_text("pre-recovery checklist")


def test_a_refusal_goes_away_once_a_later_action_succeeds(
    open_session: Any, responder: Any, settings: Any
) -> None:
    settings.LIVE_POLL_MS = 600_000  # this page will not notice the other person's change by itself
    incident = declare(responder, severity=Severity.SEV3)
    services.incident_acknowledge(incident=incident, actor=responder)
    page = open_session(responder).page
    page.goto(f"/incidents/{incident.pk}/")
    other = make_user(role="responder")
    services.incident_change_status(incident=incident, actor=other, to_status=Status.MITIGATING)
    page.locator("[data-testid=to-investigating]").click()
    flash = page.locator("#flash")
    expect(flash).to_contain_text("is now Mitigating (someone changed it); nothing changed.")
    page.locator("#id_note_text").fill("Saw it: it is mitigating")
    page.locator("#note-form").get_by_role("button", name="Add note").click()
    expect(page.locator("#timeline-list")).to_contain_text("Saw it: it is mitigating")
    expect(flash.locator(".msg-error")).to_have_count(0)


# --- The decision tree --------------------------------------------------------------------------


def test_the_decision_tree_stops_asking_once_an_answer_decides(open_session: Any, responder: Any) -> None:
    page = open_session(responder).page
    page.goto("/incidents/declare/")
    later = [page.locator("#q-services_down"), page.locator("#q-degraded")]
    page.locator("input[name=losing_money][value=yes]").check()
    expect(page.locator("#suggestion")).to_contain_text("Suggested: SEV-1")
    for question in later:
        expect(question).to_be_hidden()
    page.locator("input[name=losing_money][value=no]").check()
    expect(later[0]).to_be_visible()
    page.locator("input[name=services_down][value=one]").check()
    expect(page.locator("#suggestion")).to_contain_text("Suggested: SEV-2")
    expect(later[1]).to_be_hidden()


def test_a_quick_second_answer_is_not_lost_to_the_first_ones_late_reply(
    open_session: Any, responder: Any
) -> None:
    page = open_session(responder).page
    page.goto("/incidents/declare/")
    delayed: list[str] = []

    def slow_first(route: Any) -> None:
        if not delayed:  # the first answer's reply arrives late, after the second answer was given
            delayed.append(route.request.url)
            page.wait_for_timeout(1500)
        # The browser may have cancelled it meanwhile: that is the point.
        with contextlib.suppress(Exception):
            route.continue_()

    page.route("**/incidents/declare/suggest/**", slow_first)
    page.locator("input[name=losing_money][value=no]").check()
    page.locator("input[name=services_down][value=one]").check()
    expect(page.locator("#suggestion")).to_contain_text("Suggested: SEV-2")
    page.wait_for_timeout(2000)  # past the late reply
    expect(page.locator("#suggestion")).to_contain_text("Suggested: SEV-2")
    expect(page.locator("input[name=services_down][value=one]")).to_be_checked()
    assert delayed


# --- Without JavaScript -------------------------------------------------------------------------


def test_without_javascript_the_page_says_so_and_the_board_clock_is_right(
    open_session: Any, responder: Any
) -> None:
    incident = declare(responder, severity=Severity.SEV1, detected_at=timezone.now() - timedelta(minutes=1))
    page = open_session(responder, javascript=False).page
    page.goto("/")
    expect(page.locator(f"tr:has(a[href='/incidents/{incident.pk}/']) .sla")).to_have_text(
        re.compile(r"^ack due in 1[34]:\d\d$")
    )
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("[data-testid=static-notice]")).to_contain_text("does not update by itself")


def test_without_javascript_a_failed_form_shows_its_error(open_session: Any, responder: Any) -> None:
    incident = declare(responder, severity=Severity.SEV3)
    page = open_session(responder, javascript=False).page
    page.goto(f"/incidents/{incident.pk}/")
    form = page.locator("#severity-form")
    form.locator("select[name=severity]").select_option("1")
    with page.expect_navigation():
        form.get_by_role("button", name="Change").click()
    form = page.locator("#severity-form")
    expect(form).to_contain_text("This field is required.")
    expect(form.locator("select[name=severity]")).to_have_value("1")  # the choice is kept
    expect(page.locator("#incident-header")).to_be_visible()
    assert Incident.objects.get(pk=incident.pk).severity == Severity.SEV3
