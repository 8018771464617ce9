"""Real-browser tests: Playwright (sync API) drives Debian's Chromium against pytest-django's live server.

Run with `make test` (or `pytest -m browser`). They need DJANGO_ALLOW_ASYNC_UNSAFE=true: Playwright's sync
API runs an event loop in the test thread, and the tests still read and write through the ORM.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from incidents import services
from incidents.models import Incident, Severity, Status
from tests.browser import Session
from tests.incidents.factories import declare

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]

# How long a second browser may take to show a change (the page polls every LIVE_POLL_MS = 1.5 s).
LIVE_MS = 3000


def _incident_pk(page: Page) -> int:
    match = re.search(r"/incidents/(\d+)/$", page.url)
    assert match, page.url
    return int(match.group(1))


# --- The main flow ------------------------------------------------------------------------------


@dataclass
class FlowResult:
    pk: int
    a: Session
    b: Session


def run_main_flow(open_session: Any, responder: Any, viewer: Any) -> FlowResult:
    """The issue's acceptance scenario: A (responder) declares and works a SEV-2; B (viewer) watches."""
    a = open_session(responder)
    page = a.page

    # Declare through the decision tree: no money lost, one service down, not degraded.
    page.goto("/incidents/declare/")
    expect(page.locator("#suggestion")).to_contain_text("Answer the questions in order")
    page.locator("input[name=losing_money][value=no]").check()
    page.locator("input[name=services_down][value=one]").check()
    expect(page.locator("#suggestion")).to_contain_text("Suggested: SEV-2")
    expect(page.locator("#q-degraded")).to_be_hidden()  # a service down decided: not asked
    expect(page.locator("#suggestion")).to_contain_text("One service is completely down")
    expect(page.locator("#id_severity")).to_have_value("")  # "Use the decision tree's suggestion"
    page.locator("#id_title").fill("cdb_execution crash loop")
    page.locator("#id_incident_type").select_option(label="Service crash loop")
    with page.expect_navigation(url=re.compile(r"/incidents/\d+/$")):
        page.locator("form.declare button[type=submit]").click()
    pk = _incident_pk(page)
    incident_url = f"/incidents/{pk}/"

    # The incident page shows the severity taken from the tree, and the tree's answers.
    header = page.locator("#incident-header")
    expect(header.locator(".sev")).to_have_text("SEV-2")
    expect(header.locator(".status")).to_have_text("Triage")
    expect(header).to_contain_text("cdb_execution crash loop")
    expect(page.locator("#flash")).to_contain_text("declared as SEV-2")
    answers = page.locator("#decision-answers")
    expect(answers).to_contain_text("Is trading actively losing money?")
    expect(answers.locator("dd")).to_have_text(["No", "One non-core service is down", "SEV-2"])
    incident = Incident.objects.get(pk=pk)
    assert incident.severity == Severity.SEV2
    assert incident.decision_answers is not None
    assert incident.decision_answers["suggested"] == Severity.SEV2
    assert incident.declared_by == responder

    # B, a viewer in a second browser context, follows the same page.
    b = open_session(viewer)
    b.page.goto(incident_url)
    b_header = b.page.locator("#incident-header")
    b_timeline = b.page.locator("#timeline-list")
    expect(b_header.locator(".status")).to_have_text("Triage")
    expect(b_timeline.locator("li.event-declared")).to_contain_text("declared the incident as SEV-2")

    # From here on, neither page may reload: htmx requests and polls only.
    for session in (a, b):
        session.page.evaluate("window.__marker = 1")
    navigations = {"a": 0, "b": 0}
    page.on("framenavigated", lambda frame: _count_main(frame, page, navigations, "a"))
    b.page.on("framenavigated", lambda frame: _count_main(frame, b.page, navigations, "b"))
    timeline = page.locator("#timeline-list")

    # Acknowledge: B sees it within 3 seconds, without reloading.
    page.locator("[data-testid=acknowledge]").click()
    expect(b_timeline.locator("li.event-acknowledged")).to_contain_text(
        "responder acknowledged", timeout=LIVE_MS
    )
    expect(timeline.locator("li.event-acknowledged")).to_have_count(1)
    expect(page.locator("[data-testid=acknowledge]")).to_have_count(0)
    expect(header).not_to_contain_text("not yet")
    assert page.evaluate("window.__marker") == 1, "acknowledging reloaded the page"

    # A makes itself commander.
    form = page.locator("#commander-form")
    form.locator("select[name=commander]").select_option(label="responder")
    form.get_by_role("button", name="Assign").click()
    expect(timeline.locator("li.event-commander_assigned")).to_contain_text("made responder commander")
    expect(header.locator(".fact", has_text="Commander")).to_contain_text("responder")

    # The two pre-recovery items a person ticks, one at a time (each tick re-renders the checklists);
    # the console checks the four others itself, and they hold (the `recovered` fixture).
    checks = page.locator("#checklist-pre_recovery button.check")
    expect(checks).to_have_count(2)
    expect(page.locator('#checklist-pre_recovery .factcheck[data-state="ok"]')).to_have_count(4)
    for done in range(1, 3):
        page.locator('#checklist-pre_recovery button.check[aria-pressed="false"]').first.click()
        expect(page.locator('#checklist-pre_recovery button.check[aria-pressed="true"]')).to_have_count(done)
    expect(timeline.locator("li.event-checklist_item")).to_have_count(2)

    # Resolve: B sees the event and the header change within 3 seconds.
    page.locator("[data-testid=to-resolved]").click()
    expect(b_timeline.locator("li.event-status_changed")).to_contain_text(
        "changed status triage → resolved", timeout=LIVE_MS
    )
    expect(b_header.locator(".status")).to_have_text("Resolved", timeout=LIVE_MS)
    expect(header.locator(".status")).to_have_text("Resolved")
    expect(page.locator("[data-testid=to-resolved]")).to_have_count(0)
    expect(page.locator("[data-testid=to-closed]")).to_have_count(1)

    # Nothing reloaded, in either context.
    assert page.evaluate("window.__marker") == 1
    assert b.page.evaluate("window.__marker") == 1
    assert navigations == {"a": 0, "b": 0}
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.commander == responder
    assert incident.acknowledged_by == responder
    return FlowResult(pk=pk, a=a, b=b)


def _count_main(frame: Any, page: Page, counts: dict[str, int], key: str) -> None:
    if frame == page.main_frame:
        counts[key] += 1


def _server_event_ids(pk: int) -> list[int]:
    return list(Incident.objects.get(pk=pk).events.order_by("-id").values_list("id", flat=True))


def _event_ids(page: Page) -> list[int]:
    ids = page.locator("#timeline-list li.event").evaluate_all("(els) => els.map((el) => el.id)")
    return [int(i.removeprefix("event-")) for i in ids]


def test_declare_work_and_resolve_a_sev2_while_a_viewer_watches(
    open_session: Any, responder: Any, viewer: Any, recovered: None
) -> None:
    started = time.monotonic()
    result = run_main_flow(open_session, responder, viewer)

    # Both pages end with the server's timeline, each event once: declared, acknowledged, commander,
    # two ticks, resolved. A received them one poll at a time, so its order is the server's (newest
    # first); B may receive several in one poll, whose order has its own test below.
    expected = _server_event_ids(result.pk)
    assert len(expected) == 6
    expect(result.b.page.locator("#timeline-list li.event")).to_have_count(6)
    assert _event_ids(result.a.page) == expected
    assert sorted(_event_ids(result.b.page), reverse=True) == expected
    assert time.monotonic() - started < 30


def test_the_flow_has_no_console_errors_or_csp_violations(
    open_session: Any, responder: Any, viewer: Any, recovered: None
) -> None:
    result = run_main_flow(open_session, responder, viewer)
    # Let a last poll or two complete in both pages before judging.
    result.a.page.wait_for_timeout(500)
    assert result.a.problems.all() == [], "responder's browser"
    assert result.b.problems.all() == [], "viewer's browser"


def test_events_arriving_in_one_poll_keep_the_timeline_newest_first(
    open_session: Any, responder: Any, viewer: Any
) -> None:
    incident = declare(responder, severity=Severity.SEV2, title="Market data feed stalled")
    session = open_session(viewer)
    page = session.page
    page.goto(f"/incidents/{incident.pk}/")
    events = page.locator("#timeline-list li.event")
    expect(events).to_have_count(1)

    # Three changes committed together, so the viewer's next poll brings all three at once.
    with transaction.atomic():
        services.incident_acknowledge(incident=incident.pk, actor=responder)
        services.incident_assign_commander(incident=incident.pk, actor=responder, commander=responder)
        services.incident_add_note(incident=incident.pk, actor=responder, text="Feed handler restarted")

    expect(events).to_have_count(4, timeout=LIVE_MS)
    assert _event_ids(page) == _server_event_ids(incident.pk)
    assert "Feed handler restarted" in events.first.inner_text()


# --- Without JavaScript, and as a viewer --------------------------------------------------------


def test_acknowledge_works_without_javascript(open_session: Any, responder: Any) -> None:
    incident = declare(responder, severity=Severity.SEV2, title="Exchange API returns 502")
    session = open_session(responder, javascript=False)
    page = session.page
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("#incident-header .status")).to_have_text("Triage")
    expect(page.locator("#timeline-list li.event-acknowledged")).to_have_count(0)

    with page.expect_navigation(url=re.compile(rf"/incidents/{incident.pk}/$")):
        page.locator("[data-testid=acknowledge]").click()

    assert page.url.endswith(f"/incidents/{incident.pk}/")
    expect(page.locator("#flash")).to_contain_text("Acknowledged.")
    expect(page.locator("#timeline-list li.event-acknowledged")).to_contain_text("responder acknowledged")
    expect(page.locator("[data-testid=acknowledge]")).to_have_count(0)
    incident.refresh_from_db()
    assert incident.acknowledged_by == responder
    assert session.problems.all() == []


def test_a_viewer_sees_no_action_buttons(open_session: Any, responder: Any, viewer: Any) -> None:
    incident = declare(responder, severity=Severity.SEV2, title="Risk engine health is error")
    session = open_session(viewer)
    page = session.page
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("#incident-header")).to_contain_text("Risk engine health is error")
    actions = page.locator("#incident-actions")
    expect(actions).to_contain_text("acting on it needs the responder role")
    expect(actions.locator("button, form")).to_have_count(0)
    for selector in (
        "[data-testid=acknowledge]",
        "[data-testid^=to-]",
        "button.check",
        "#commander-form",
        "#severity-form",
        "#note-form",
        "#override-form",
    ):
        expect(page.locator(selector)).to_have_count(0)
    # The only button left on the page is the top bar's "Log out".
    expect(page.locator("main button")).to_have_count(0)
    expect(page.locator("#checklist-pre_recovery .check.static")).to_have_count(2)
    expect(page.locator("#checklist-pre_recovery .factcheck")).to_have_count(4)
    assert session.problems.all() == []
