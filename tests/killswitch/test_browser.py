"""Real-browser tests of the kill switch: Playwright (sync API) drives Debian's Chromium against
pytest-django's live server, with both targets on CDB state files in a temporary directory.

The acceptance flow: a responder halts trading from a SEV-1 incident; the banner turns everywhere; a
lead requests resume; the same lead cannot approve; a second lead approves after re-entering the
password; CDB's state file shows the exact text CDB would have written.

Run with `make test` (or `pytest -m browser`); they need DJANGO_ALLOW_ASYNC_UNSAFE=true (see
tests/incidents/test_browser.py, whose fixtures these follow).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from incidents.models import Severity
from killswitch.models import Action, AuditRecord, ResumeRequest, ResumeStatus
from tests.incidents.factories import PASSWORD, declare, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]

# How long another browser's banner may take to turn: it polls every 5 s, plus the request itself.
BANNER_MS = 6500
# The incident page's timeline polls every 1.5 s.
LIVE_MS = 3000
# CDB's timestamps: naive UTC ISO 8601 with microseconds (datetime.utcnow().isoformat()).
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"


def banner(page: Page, target: str = "production") -> Any:
    return page.locator(f"#killswitch-banner a.ks-target[data-target={target}]")


def has_class(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def csrf_token(page: Page) -> str:
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    assert token
    return token


def age_reauth(context: Any, *, seconds: int) -> None:
    """Move this browser session's "password entered" time back (what waiting that long would do)."""
    from django.contrib.sessions.backends.base import SessionBase

    from console import reauth
    from console.sessions import SessionStore

    [key] = [c["value"] for c in context.cookies() if c["name"] == "sessionid"]
    session: SessionBase = SessionStore(session_key=key)
    session[reauth.SESSION_KEY] -= seconds
    session.save()


def assert_naive_utc_now(value: str) -> None:
    """One of CDB's timestamps: naive, UTC, and written during this test."""
    written = datetime.fromisoformat(value)
    assert written.tzinfo is None
    assert abs(datetime.now(UTC).replace(tzinfo=None) - written) < timedelta(minutes=2), value


# --- The acceptance flow ------------------------------------------------------------------------

MESSAGE = "Exchange rejects every order since 14:02, halting per playbook 6.3"
JUSTIFICATION = "Exchange recovered at 14:40; orders fill normally for 20 minutes, metrics normal."


def test_halt_from_a_sev1_and_resume_with_four_eyes(
    open_session: Any, ks_files: Any, responder: Any, viewer: Any, lead: Any
) -> None:
    started = time.monotonic()
    incident = declare(
        responder,
        severity=Severity.SEV1,
        type_slug="exchange-api-failure",
        title="Exchange API down: every order rejected",
    )
    incident_url = f"/incidents/{incident.pk}/"

    # W, a viewer, has the home page open and keeps it open (no reloads) to the end.
    w = open_session(viewer)
    w.page.goto("/")
    expect(banner(w.page)).to_have_count(1)
    expect(banner(w.page, "drill")).to_have_count(1)
    expect(banner(w.page)).not_to_have_class(has_class("ks-halted"))
    w.page.evaluate("window.__marker = 1")

    # A, a responder, halts trading from the incident page.
    a = open_session(responder)
    page = a.page
    page.goto(incident_url)
    expect(page.locator("#incident-header .sev")).to_have_text("SEV-1")
    with page.expect_navigation(url=re.compile(r"/killswitch/production/activate/\?")):
        page.locator("[data-testid=halt]").click()
    expect(page.locator("h1")).to_have_text("Halt trading on Production")
    # The incident type's reason and the incident itself are preselected.
    expect(page.locator("#id_reason")).to_have_value("exchange_error")
    expect(page.locator("#id_incident")).to_have_value(str(incident.pk))
    page.locator("#id_message").fill(MESSAGE)
    with page.expect_navigation(url=re.compile(r"/killswitch/production/activate/$")):
        page.locator("[data-testid=halt-next]").click()

    # The confirmation page repeats what will be written; nothing is written yet.
    confirm = page.locator("section.confirm")
    expect(confirm.locator("h1")).to_have_text("Halt trading on Production?")
    expect(confirm.locator("dl.answers dd")).to_have_text(
        ["exchange_error", MESSAGE, re.compile(re.escape(incident.title))]
    )
    assert "state=inactive\n" in ks_files.production.read_text()
    with page.expect_navigation(url=re.compile(rf"{re.escape(incident_url)}$")):
        page.locator("[data-testid=halt-confirm]").click()
    halted_at = time.monotonic()

    # Back on the incident page: the flash, the timeline event, and this page's own banner.
    expect(page.locator("#flash")).to_contain_text("Trading halted on Production.")
    expect(page.locator("#timeline-list li.event-kill_switch")).to_contain_text(
        "Halted trading on Production (exchange_error)"
    )
    expect(banner(page)).to_have_class(has_class("ks-halted"))

    # W's banner turns without a reload, at its next poll.
    expect(banner(w.page)).to_have_class(has_class("ks-halted"), timeout=BANNER_MS)
    assert time.monotonic() - halted_at < BANNER_MS / 1000
    expect(banner(w.page)).to_contain_text("TRADING HALTED")
    expect(banner(w.page)).to_contain_text("exchange_error")
    expect(banner(w.page, "drill")).not_to_have_class(has_class("ks-halted"))
    assert w.page.evaluate("window.__marker") == 1, "the viewer's page reloaded"

    # CDB's state file, byte for byte as CDB writes it.
    text = ks_files.production.read_text(encoding="utf-8")
    match = re.fullmatch(
        rf"state=active\nreason=exchange_error\nmessage={re.escape(MESSAGE)} \(operator: responder\)\n"
        rf"activated_at=({TS})\nupdated_at=({TS})\n",
        text,
    )
    assert match, text
    for stamp in match.groups():
        assert_naive_utc_now(stamp)
    assert match.group(1) <= match.group(2)
    assert "state=inactive\n" in ks_files.drill.read_text(), "the drill target was touched"

    # L1, a lead, requests resume with the incident attached.
    l1 = open_session(lead)
    l1.page.goto("/killswitch/production/resume/")
    expect(l1.page.locator("h1")).to_have_text("Request to resume trading on Production")
    l1.page.locator("#id_justification").fill(JUSTIFICATION)
    l1.page.locator("#id_incident").select_option(str(incident.pk))
    with l1.page.expect_navigation(url=re.compile(r"/killswitch/$")):
        l1.page.locator("[data-testid=request-resume]").click()
    request = ResumeRequest.objects.get()
    assert request.status == ResumeStatus.PENDING
    assert request.requested_by == lead
    assert request.incident_id == incident.pk
    assert len(request.pre_recovery) == 6, "the incident's pre-recovery checklist is attached"
    expect(l1.page.locator("#flash")).to_contain_text(
        f"Resume request #{request.pk} filed; another lead must approve it."
    )

    # L1 sees its own request without an approve button.
    card = l1.page.locator(f"#request-{request.pk}")
    expect(card).to_contain_text(JUSTIFICATION)
    expect(card).to_contain_text("another lead must approve")
    expect(card.locator("ul.prerecovery li")).to_have_count(len(request.pre_recovery))
    expect(l1.page.locator(f"[data-testid=approve-{request.pk}]")).to_have_count(0)
    expect(card.locator("input[type=password]")).to_have_count(0)

    # Nor does a hand-made POST approve it.
    response = l1.page.request.post(
        f"/killswitch/requests/{request.pk}/approve/",
        form={"csrfmiddlewaretoken": csrf_token(l1.page)},
        headers={"X-CSRFToken": csrf_token(l1.page)},
    )
    assert response.ok, response.status
    assert "a different person must approve it" in response.text()
    assert ks_files.production.read_text(encoding="utf-8") == text, "the requester's POST changed the file"
    request.refresh_from_db()
    assert request.status == ResumeStatus.PENDING
    assert request.decided_by is None

    # L2, a second lead who entered the password in this session more than 5 minutes ago, re-enters it.
    lead2 = make_user(username="lead2", role="lead")
    l2 = open_session(lead2)
    age_reauth(l2.context, seconds=600)
    l2.page.goto("/killswitch/")
    card = l2.page.locator(f"#request-{request.pk}")
    expect(card).to_contain_text(f"#{request.pk} production")
    expect(card).to_contain_text("by lead")
    password = card.locator(f"#pw-{request.pk}")
    expect(password).to_have_count(1)
    expect(card.locator(f"label[for=pw-{request.pk}]")).to_contain_text(
        "not entered in this session in the last 5 minutes"
    )
    approve = l2.page.locator(f"[data-testid=approve-{request.pk}]")

    # A wrong password changes nothing.
    password.fill("not-the-password")
    with l2.page.expect_navigation(url=re.compile(r"/killswitch/$")):
        approve.click()
    expect(l2.page.locator("#flash .msg-error")).to_contain_text(
        "That password is not right; nothing was approved."
    )
    assert ks_files.production.read_text(encoding="utf-8") == text
    request.refresh_from_db()
    assert request.status == ResumeStatus.PENDING
    expect(l2.page.locator("#target-production .ks-big")).to_contain_text("Trading halted")

    # The right one resumes trading.
    password.fill(PASSWORD)
    with l2.page.expect_navigation(url=re.compile(r"/killswitch/$")):
        approve.click()
    resumed_at = time.monotonic()
    expect(l2.page.locator("#flash")).to_contain_text("Trading resumed on Production.")
    expect(l2.page.locator("#target-production .ks-big")).to_contain_text("Trading")
    expect(l2.page.locator("#target-production .ks-big")).not_to_contain_text("halted")
    expect(l2.page.locator(f"#request-{request.pk}")).to_have_count(0)
    request.refresh_from_db()
    assert request.status == ResumeStatus.APPROVED
    assert request.decided_by == lead2

    text = ks_files.production.read_text(encoding="utf-8")
    match = re.fullmatch(
        rf"state=inactive\nreason=none\n"
        rf"message=Deactivated by lead2: {re.escape(JUSTIFICATION)} \(request #{request.pk} by lead\)\n"
        rf"activated_at=none\nupdated_at=({TS})\n",
        text,
    )
    assert match, text
    assert_naive_utc_now(match.group(1))

    # W's banner turns back to trading, still without a reload; A's timeline shows the resume.
    expect(banner(w.page)).to_have_class(has_class("ks-trading"), timeout=BANNER_MS)
    assert time.monotonic() - resumed_at < BANNER_MS / 1000
    expect(banner(w.page)).not_to_have_class(has_class("ks-halted"))
    assert w.page.evaluate("window.__marker") == 1, "the viewer's page reloaded"
    expect(page.locator("#timeline-list li.event-kill_switch")).to_have_count(2, timeout=LIVE_MS)
    expect(page.locator("#timeline-list li.event-kill_switch").first).to_contain_text(
        f"Resumed trading on Production (request #{request.pk} by lead)"
    )

    # The audit, as L2: the halt, the request and the approval, each by its actor.
    l2.page.goto("/killswitch/audit/")
    rows = l2.page.locator("table.board tbody tr")
    for action, actor, change, reason in (
        (Action.ACTIVATED, "responder", "trading → halted", f"exchange_error: {MESSAGE}"),
        (Action.RESUME_REQUESTED, "lead", "halted → halted", JUSTIFICATION),
        (Action.RESUME_APPROVED, "lead2", "halted → trading", JUSTIFICATION),
    ):
        row = rows.filter(has_text=str(action.label))
        expect(row).to_have_count(1)
        cells = row.locator("td")
        expect(cells.nth(2)).to_contain_text(actor)
        expect(cells.nth(4)).to_have_text("production")
        expect(cells.nth(5)).to_have_text(change)
        expect(cells.nth(6)).to_have_text(reason)
        if action != Action.ACTIVATED:
            expect(cells.nth(7)).to_have_text(str(request.pk))
    assert list(
        AuditRecord.objects.filter(target="production").order_by("seq").values_list("action", "actor_name")
    ) == [
        (Action.ACTIVATED, "responder"),
        (Action.RESUME_REQUESTED, "lead"),
        (Action.RESUME_APPROVED, "lead2"),
    ]

    # Nothing went wrong in any browser.
    for name, session in (("responder", a), ("viewer", w), ("lead", l1), ("lead2", l2)):
        assert session.problems.all() == [], f"{name}'s browser"

    # The audit is not for viewers: no link, and 403 when asked directly.
    expect(w.page.locator(".topbar nav a", has_text="Audit")).to_have_count(0)
    denied = w.page.goto("/killswitch/audit/")
    assert denied is not None
    assert denied.status == 403
    assert time.monotonic() - started < 40


# --- Console errors and CSP ---------------------------------------------------------------------


def test_killswitch_pages_and_banner_have_no_console_errors_or_csp_violations(
    open_session: Any, ks_files: Any, lead: Any, viewer: Any
) -> None:
    session = open_session(lead)
    page = session.page

    # Halt the drill target through the kill-switch page (no incident), then request its resume.
    page.goto("/killswitch/")
    expect(page.locator("#target-drill .ks-big")).to_contain_text("Trading")
    with page.expect_navigation(url=re.compile(r"/killswitch/drill/activate/$")):
        page.locator("[data-testid=halt-drill]").click()
    page.locator("#id_message").fill("Drill: halt and resume")
    with page.expect_navigation():
        page.locator("[data-testid=halt-next]").click()
    expect(page.locator("section.confirm h1")).to_have_text("Halt trading on Drill?")
    with page.expect_navigation(url=re.compile(r"/killswitch/$")):
        page.locator("[data-testid=halt-confirm]").click()
    expect(page.locator("#target-drill .ks-big")).to_contain_text("Trading halted")
    expect(banner(page, "drill")).to_have_class(has_class("ks-halted"))
    assert ks_files.drill.read_text().startswith("state=active\nreason=manual\n")

    page.goto("/killswitch/drill/resume/")
    page.locator("#id_justification").fill("Drill over: nothing was wrong, resume the drill target.")
    with page.expect_navigation(url=re.compile(r"/killswitch/$")):
        page.locator("[data-testid=request-resume]").click()
    expect(page.locator(".ks-request")).to_have_count(1)

    # The audit page, then one banner poll on it.
    page.goto("/killswitch/audit/")
    expect(page.locator("h1")).to_have_text("Kill-switch audit")
    with page.expect_response(re.compile(r"/killswitch/banner/$"), timeout=BANNER_MS) as polled:
        pass
    assert polled.value.status == 200
    expect(banner(page, "drill")).to_have_class(has_class("ks-halted"))

    # A viewer's kill-switch page and banner, with one poll.
    watcher = open_session(viewer)
    watcher.page.goto("/killswitch/")
    expect(watcher.page.locator("#target-drill .ks-big")).to_contain_text("Trading halted")
    expect(watcher.page.locator("[data-testid^=halt-], [data-testid^=resume-]")).to_have_count(0)
    with watcher.page.expect_response(re.compile(r"/killswitch/banner/$"), timeout=BANNER_MS) as polled:
        pass
    assert polled.value.status == 200

    assert session.problems.all() == [], "lead's browser"
    assert watcher.problems.all() == [], "viewer's browser"
