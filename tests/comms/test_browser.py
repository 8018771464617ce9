"""In a real browser: a commander sends the playbook's three messages from the incident page and sees
each delivered, live; resolving sends the stakeholders' summary."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from incidents import services as incident_services
from incidents.models import Severity, Status
from notify import services as notify
from notify.models import Channel
from tests.incidents.factories import declare
from tests.standins.receiver import Receiver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]
LIVE_MS = 6000


def _send(page: Any, kind: str, fill: dict[str, str], edit: str) -> None:
    compose = page.locator("#incident-compose")
    compose.locator("#id_compose_kind").select_option(kind)
    for field, value in fill.items():
        compose.locator(f"#id_compose_{field}").fill(value)
    compose.get_by_test_id("compose-preview").click()
    text = page.locator("#id_send_text")
    expect(text).to_be_visible()
    text.fill(text.input_value() + edit)
    page.get_by_test_id("compose-send").click()
    expect(page.locator("#incident-compose")).to_contain_text("Message queued for delivery.")


def test_a_commander_sends_the_three_messages_and_sees_them_delivered(
    open_session, lead, responder, settings
):
    with Receiver() as chat:
        for name in ("incidents", "stakeholders"):
            Channel.objects.create(name=name, url=chat.apprise_url(f"/{name}"))
        incident = declare(
            responder, severity=Severity.SEV2, title="Order router stalls", description="Orders stall"
        )
        incident_services.incident_acknowledge(incident=incident, actor=responder)
        incident_services.incident_assign_commander(incident=incident, actor=lead, commander=lead)
        session = open_session(lead)
        page = session.page
        page.goto(f"/incidents/{incident.pk}/")

        _send(page, "initial", {"impact": "Order flow on all venues"}, "\n(commander's note)")
        notify.messages_deliver_due()  # the worker's job
        messages = page.locator("#incident-messages")
        expect(messages.locator(".message-sent").filter(has_text="initial")).to_have_count(1, timeout=LIVE_MS)
        expect(page.locator("#timeline-list")).to_contain_text(
            "Initial by #incidents: delivered", timeout=LIVE_MS
        )

        _send(page, "update", {"progress": "Router restarted", "next_steps": "Watch fills"}, "")
        _send(page, "resolution", {"root_cause": "A stuck lock in the router"}, "")
        notify.messages_deliver_due()
        expect(messages.locator(".message-sent")).to_have_count(4, timeout=LIVE_MS)  # notice + three

        incident_services.incident_change_status(
            incident=incident, actor=lead, to_status=Status.RESOLVED, override_reason="router fixed"
        )
        notify.messages_deliver_due()
        expect(messages.locator(".message-sent").filter(has_text="summary")).to_have_count(1, timeout=LIVE_MS)

        bodies = {r.body["message"].splitlines()[0]: r for r in chat.wait_for(5)}
        assert "🚨 INCIDENT: Orders stall" in bodies
        assert "📊 INCIDENT UPDATE: Orders stall" in bodies and "✅ INCIDENT RESOLVED: Orders stall" in bodies
        initial = bodies["🚨 INCIDENT: Orders stall"].body["message"]
        assert "Impact: Order flow on all venues" in initial and initial.endswith("(commander's note)")
        assert bodies["✅ INCIDENT RESOLVED: Orders stall"].path == "/incidents"
        assert [r.path for r in chat.received].count("/stakeholders") == 1
        assert not any(r.body["message"].startswith("✅") for r in chat.received[5:])  # not sent twice
        assert session.problems.all() == []
