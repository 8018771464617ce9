"""The playbook's communication plan: a notice when an incident opens, the three templates composed
from the incident page, the resolution and summary on resolve, and reminders of overdue updates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from comms import services
from comms.models import MessageTemplate, UpdateClock
from incidents import services as incident_services
from incidents.models import IncidentType, Severity, Status
from notify import services as notify
from notify.models import Channel, InboxItem, Message
from tests.incidents.factories import declare, make_user
from tests.oncall.factories import rotation
from tests.standins.receiver import Receiver
from tests.standins.smtp import Mailbox

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def receiver(settings: Any) -> Any:
    settings.NOTIFY_CHANNELS = {}
    with Receiver() as r:
        for name in ("incidents", "engineering", "stakeholders"):
            Channel.objects.create(name=name, url=r.apprise_url(f"/{name}"))
        yield r


def delivered(receiver: Receiver, count: int) -> dict[str, list[str]]:
    notify.messages_deliver_due()
    by_channel: dict[str, list[str]] = {}
    for item in receiver.wait_for(count):
        by_channel.setdefault(item.path.strip("/"), []).append(item.body["message"])
    return by_channel


def test_declaring_posts_a_notice_to_the_routed_channel_at_once(receiver, responder, settings):
    settings.CONSOLE_URL = "https://console.cdb.example"
    rotation(responder)  # somebody is on call
    sev1 = declare(responder, severity=Severity.SEV1, title="Exchange API down")
    sev3 = declare(responder, severity=Severity.SEV3, title="Slow market data")
    got = delivered(receiver, 2)
    [notice] = got["incidents"]
    assert notice.splitlines()[:2] == [
        f"{sev1.reference} SEV-1 Triage: Exchange API down",
        f"https://console.cdb.example/incidents/{sev1.pk}/",
    ]
    assert "Nobody is on call" not in notice
    assert got["engineering"][0].startswith(f"{sev3.reference} SEV-3 Triage: Slow market data")


def test_with_nobody_on_call_the_notice_says_so(receiver, responder):
    declare(responder, severity=Severity.SEV1)
    [notice] = delivered(receiver, 1)["incidents"]
    assert "Nobody is on call as on-call engineer: page someone by hand." in notice


def test_a_burst_of_detected_incidents_each_gets_its_notice(receiver):
    other = IncidentType.objects.get(slug="other")
    incident_services.incidents_declare(
        declarations=[
            incident_services.Declaration(
                incident_type=other,
                title=f"ServiceDown {i}",
                severity=1,
                description="",
                affected_components=[],
                detected_at=timezone.now(),
                signals=[],
            )
            for i in range(5)
        ],
    )
    assert (
        sorted(m.split(":")[1].split()[0] for m in delivered(receiver, 5)["incidents"]) == ["ServiceDown"] * 5
    )


def test_a_commander_previews_edits_and_sends_the_initial_alert(client, receiver, lead, responder):
    incident = declare(
        responder, severity=Severity.SEV1, title="Kill switch tripped", description="Orders blocked"
    )
    incident_services.incident_assign_commander(incident=incident, actor=lead, commander=lead)
    delivered(receiver, 1)  # the notice
    client.force_login(lead)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'id="incident-compose"' in page and 'id="incident-messages"' in page
    preview = client.post(
        reverse("comms:preview", args=[incident.pk]),
        {"kind": "initial", "impact": "All order flow"},
        **HX,
    ).content.decode()
    assert "🚨 INCIDENT: Orders blocked" in preview and "Impact: All order flow" in preview
    assert "Commander: lead" in preview and "Severity: SEV-1" in preview
    text = "🚨 INCIDENT: Orders blocked\nSeverity: SEV-1\nImpact: all order flow (edited)"
    response = client.post(
        reverse("comms:send", args=[incident.pk]),
        {"kind": "initial", "title": "INC alert", "text": text},
        **HX,
    )
    assert response.status_code == 200 and response["HX-Trigger"] == '{"incident-changed": {}}'
    fresh = response.content.decode()
    assert "Message queued for delivery." in fresh
    assert '<option value="initial">Initial alert</option>' in fresh  # a fresh form, ready for the next
    assert delivered(receiver, 2)["incidents"][-1] == text
    event = incident.events.filter(kind="message_sent").get()
    assert (event.message, event.new_value, event.actor) == (text, "incidents", lead)
    assert incident.events.filter(kind="delivery", message="Initial by #incidents: delivered").exists()
    clock = UpdateClock.objects.get(incident=incident)
    assert timedelta(minutes=29) < clock.due_at - timezone.now() <= timedelta(minutes=30)  # SEV-1 cadence


def test_sending_without_javascript_redirects_back_and_refuses_an_empty_message(
    client, receiver, lead, responder
):
    incident = declare(responder)
    client.force_login(lead)
    url = reverse("comms:send", args=[incident.pk])
    response = client.post(url, {"kind": "update", "title": "t", "text": "   "}, follow=True)
    assert (
        "This field is required." in response.content.decode()
        or "The message is empty." in response.content.decode()
    )
    response = client.post(url, {"kind": "update", "title": "t", "text": "Investigating the feed"})
    assert response.status_code == 302 and response.url == reverse("incidents:detail", args=[incident.pk])
    assert Message.objects.filter(incident_id=incident.pk, kind="update").count() == 1


def test_viewers_cannot_compose(client, viewer, responder):
    incident = declare(responder)
    client.force_login(viewer)
    assert (
        'id="incident-compose"'
        not in client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    )
    assert (
        client.post(
            reverse("comms:send", args=[incident.pk]), {"kind": "update", "title": "t", "text": "x"}
        ).status_code
        == 403
    )


def test_resolving_sends_the_resolution_and_the_stakeholders_summary(receiver, responder):
    incident = declare(responder, severity=Severity.SEV3, title="Slow market data")
    incident_services.incident_acknowledge(incident=incident, actor=responder)
    incident_services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    got = delivered(receiver, 3)
    [resolution] = [m for m in got["engineering"] if m.startswith("✅ INCIDENT RESOLVED: Slow market data")]
    assert "Duration:" in resolution
    assert got["stakeholders"][0].startswith(f"{incident.reference} (SEV-3) is resolved.")
    assert UpdateClock.objects.get(incident=incident).due_at is None


def test_a_resolution_already_sent_by_the_commander_is_not_sent_twice(receiver, responder, lead):
    incident = declare(responder, severity=Severity.SEV3)
    incident_services.incident_acknowledge(incident=incident, actor=responder)
    services.message_send(
        incident=incident, actor=lead, kind="resolution", title="done", text="Resolved by hand"
    )
    incident_services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    assert list(
        Message.objects.filter(incident_id=incident.pk).values_list("kind", flat=True).order_by("id")
    ) == [
        "notice",
        "resolution",
        "summary",
    ]
    # Reopened and resolved again: a new resolution goes out.
    incident_services.incident_change_status(
        incident=incident, actor=responder, to_status=Status.INVESTIGATING
    )
    incident_services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    assert Message.objects.filter(incident_id=incident.pk, kind="resolution").count() == 2


def test_an_overdue_update_reminds_the_commander_once_per_due_time(settings, responder):
    with Mailbox() as mailbox:
        settings.NOTIFY_EMAIL_URL = mailbox.apprise_url()
        commander = make_user(role="responder", username="cmdr", email="cmdr@cdb.example")
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            incident = declare(responder, severity=Severity.SEV1)
            incident_services.incident_assign_commander(
                incident=incident, actor=commander, commander=commander
            )
        with time_machine.travel(start + timedelta(minutes=29), tick=False):
            assert services.update_reminders_sweep() == 0
        with time_machine.travel(start + timedelta(minutes=31), tick=False):
            assert services.update_reminders_sweep() == 1
            assert services.update_reminders_sweep() == 0  # once per due time
            notify.messages_deliver_due()
        [item] = InboxItem.objects.filter(user=commander)
        assert item.title == f"{incident.reference}: status update overdue"
        [mail] = mailbox.wait_for(1)
        assert (
            mail["To"] == "cmdr@cdb.example"
            and "was due 1 min ago" in mail.get_body(("plain",)).get_content()
        )
        assert incident.events.filter(kind="update_reminder").count() == 1
        # An update sent moves the clock: the next reminder is one cadence later.
        with time_machine.travel(start + timedelta(minutes=40), tick=False):
            services.message_send(
                incident=incident, actor=commander, kind="update", title="u", text="Still on it"
            )
        with time_machine.travel(start + timedelta(minutes=69), tick=False):
            assert services.update_reminders_sweep() == 0
        with time_machine.travel(start + timedelta(minutes=71), tick=False):
            assert services.update_reminders_sweep() == 1


def test_a_drill_is_marked_in_every_message(receiver, responder):
    declare(responder, severity=Severity.SEV1, title="Practice", is_drill=True)
    [notice] = delivered(receiver, 1)["incidents"]
    assert notice.startswith("DRILL · ")


def test_a_playbook_version_with_a_template_that_does_not_parse_is_refused():
    from incidents.playbook import PlaybookError, playbook_adopt, read_playbook

    document = read_playbook()
    document["communication"]["templates"][2]["text"] = "{% if %}"
    with pytest.raises(PlaybookError, match=r"communication\.templates\[2\]\.text: template does not parse"):
        playbook_adopt(document=document, note="broken", actor=None, source="admin")
    kind = document["communication"]["templates"][2]["kind"]
    assert "{% if %}" not in MessageTemplate.objects.get(kind=kind).text


def test_each_delivery_about_an_incident_is_on_its_timeline(receiver, responder, settings):
    incident = declare(responder, severity=Severity.SEV1, title="Exchange API down")
    before = incident.version
    notify.messages_deliver_due()
    incident.refresh_from_db()
    assert incident.version > before  # the live page sees it
    [row] = incident.events.filter(kind="delivery")
    assert row.message == "Notice by #incidents: delivered"
    receiver.mode = "fail"
    services.message_send(incident=incident, actor=responder, kind="update", title="u", text="Still on it")
    notify.messages_deliver_due()
    failed = incident.events.filter(kind="delivery").order_by("-id").first()
    assert (
        failed.message.startswith("Update by #incidents: failed, will retry (")
        and failed.new_value == "retrying"
    )
    # Later retries are not reported again until they end.
    Message.objects.filter(incident_id=incident.pk, kind="update").update(next_attempt_at=timezone.now())
    notify.messages_deliver_due()
    assert incident.events.filter(kind="delivery").count() == 2
