"""The escalation matrix run from the database: each step once, on the timeline, stopped by an
acknowledgement, restarted by a reopen or a raised severity."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from escalation import services
from escalation.models import Step, StepState
from incidents import services as incident_services
from incidents.models import Severity, Status
from notify import services as notify
from notify.models import ContactPoints, InboxItem, Message
from oncall.models import Duty
from tests.incidents.factories import declare, make_user
from tests.oncall.factories import rotation
from tests.standins.receiver import Receiver
from tests.standins.smtp import Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def rota() -> dict[str, Any]:
    """Somebody holds each duty: alice (engineer), lena (tech lead), carl (executive)."""
    people = {
        "alice": make_user(role="responder", username="alice", email="alice@cdb.example"),
        "lena": make_user(role="lead", username="lena", email="lena@cdb.example"),
        "carl": make_user(role="executive", username="carl", email="carl@cdb.example"),
    }
    start = timezone.now() - timedelta(days=3)
    for name, duty in (("alice", Duty.ONCALL_ENGINEER), ("lena", Duty.TECH_LEAD), ("carl", Duty.EXECUTIVE)):
        rotation(people[name], name=duty, duty=duty, effective_from=start.date(), handoff_weekday=None)
    return people


def timeline_pages(incident: Any) -> list[str]:
    return list(incident.events.filter(kind="escalation").order_by("id").values_list("message", flat=True))


def test_a_sev1_nobody_acknowledges_pages_along_the_matrix_each_step_once(rota, settings):
    with Receiver() as chat, Mailbox() as mailbox:
        settings.NOTIFY_CHANNELS = {"incidents": chat.apprise_url("/incidents")}
        settings.NOTIFY_EMAIL_URL = mailbox.apprise_url()
        ContactPoints.objects.create(
            user=rota["alice"], chat_handle="@alice", webhook_url=chat.apprise_url("/alice")
        )
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            incident = declare(make_user(role="responder"), severity=Severity.SEV1, title="Exchange API down")
            assert services.escalation_sweep() == 2  # the on-call engineer paged, the executive told, at once
            assert services.escalation_sweep() == 0
        assert timeline_pages(incident) == ["Paged alice (on-call engineer)", "Notified carl (executive)"]
        with time_machine.travel(start + timedelta(minutes=14, seconds=59), tick=False):
            assert services.escalation_sweep() == 0
        with time_machine.travel(start + timedelta(minutes=15), tick=False):
            assert services.escalation_sweep() == 1
        with time_machine.travel(start + timedelta(minutes=30), tick=False):
            assert services.escalation_sweep() == 1
            assert services.escalation_sweep() == 0
        assert timeline_pages(incident) == [
            "Paged alice (on-call engineer)",
            "Notified carl (executive)",
            "Paged lena (tech lead)",
            "Paged carl (executive)",
        ]
        assert list(Step.objects.filter(incident=incident).values_list("state", flat=True)) == ["done"] * 4
        # Inbox, email, personal webhook and a mention in the routed channel, each once.
        assert list(
            InboxItem.objects.filter(incident_id=incident.pk).values_list("user__username", "kind")
        ) == [
            ("carl", "page"),
            ("lena", "page"),
            ("carl", "notify"),
            ("alice", "page"),
        ]
        with time_machine.travel(start + timedelta(minutes=31), tick=False):
            notify.messages_deliver_due()
        mails = mailbox.wait_for(4)
        assert sorted(m["To"] for m in mails) == [
            "alice@cdb.example",
            "carl@cdb.example",
            "carl@cdb.example",
            "lena@cdb.example",
        ]
        received = chat.wait_for(6)  # notice + 4 channel messages + alice's webhook
        assert [r.path for r in received].count("/alice") == 1
        mentions = [r.body["message"] for r in received if r.path == "/incidents"]
        assert any(m.startswith("Paged @alice (on-call engineer) for INC") for m in mentions)
        assert len(chat.unique_keys()) == len(received)


def test_acknowledging_stops_the_pages_but_not_the_executive_rule(rota):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        incident = declare(make_user(role="responder"), severity=Severity.SEV2)
        services.escalation_sweep()
        page = InboxItem.objects.get(incident_id=incident.pk, user=rota["alice"])
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        incident_services.incident_acknowledge(incident=incident, actor=rota["alice"])
    page.refresh_from_db()
    assert page.read_at is not None  # the page is answered
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert services.escalation_sweep() == 1  # SEV-2 still open after an hour: the executive is told
    assert timeline_pages(incident) == ["Paged alice (on-call engineer)", "Notified carl (executive)"]
    steps = dict(Step.objects.filter(incident=incident).values_list("target", "note"))
    assert steps["tech_lead"] == "acknowledged by alice"


def test_resolving_cancels_what_is_left(rota):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        incident = declare(make_user(role="responder"), severity=Severity.SEV2)
        incident_services.incident_acknowledge(incident=incident, actor=rota["alice"])
        incident_services.incident_assign_commander(
            incident=incident, actor=rota["lena"], commander=rota["lena"]
        )
        incident_services.incident_change_status(
            incident=incident, actor=rota["alice"], to_status=Status.RESOLVED, override_reason="restored"
        )
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        assert services.escalation_sweep() == 0
    assert set(Step.objects.filter(incident=incident).values_list("state", flat=True)) == {
        StepState.CANCELLED
    }


def test_raising_the_severity_restarts_the_chain_from_the_new_rules(rota):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        incident = declare(make_user(role="responder"), severity=Severity.SEV3)
        services.escalation_sweep()  # SEV-3: the assigned engineer (no commander: the on-call engineer)
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        incident_services.incident_change_severity(
            incident=incident, actor=None, severity=1, reason="orders fail"
        )
        services.escalation_sweep()
    assert timeline_pages(incident) == [
        "Paged alice (assigned engineer)",
        "Paged alice (on-call engineer)",
        "Notified carl (executive)",
    ]
    chain = Step.objects.filter(incident=incident).order_by("generation", "position")
    assert [(s.generation, s.state) for s in chain] == [
        (1, "done"),
        (1, "cancelled"),
        (2, "done"),
        (2, "done"),
        (2, "pending"),
        (2, "pending"),
    ]


def test_lowering_the_severity_repeats_nobody(rota):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        incident = declare(make_user(role="responder"), severity=Severity.SEV1)
        services.escalation_sweep()
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        incident_services.incident_change_severity(
            incident=incident, actor=None, severity=2, reason="contained"
        )
    with time_machine.travel(start + timedelta(minutes=15), tick=False):
        services.escalation_sweep()
    with time_machine.travel(start + timedelta(minutes=60), tick=False):
        services.escalation_sweep()
    assert timeline_pages(incident) == [
        "Paged alice (on-call engineer)",
        "Notified carl (executive)",
        "Paged lena (tech lead)",  # SEV-2's 15-minute step, counted from the first opening
        "Notified carl (executive)",  # SEV-2's executive rule: still open after an hour
    ]


def test_sev3_pages_its_commander_and_sev4_tells_the_engineering_channel(rota):
    commander = make_user(role="responder", username="cmdr")
    sev3 = declare(commander, severity=Severity.SEV3)
    incident_services.incident_assign_commander(incident=sev3, actor=commander, commander=commander)
    sev4 = declare(commander, severity=Severity.SEV4)
    services.escalation_sweep()
    assert timeline_pages(sev3) == ["Paged cmdr (assigned engineer)"]
    assert timeline_pages(sev4) == ["Notified the engineering queue (#engineering)"]
    assert Message.objects.filter(incident_id=sev4.pk, kind="notify", address="engineering").count() == 1


def test_with_nobody_on_call_the_step_says_so_in_the_channel():
    incident = declare(make_user(role="responder"), severity=Severity.SEV1)
    services.escalation_sweep()
    assert timeline_pages(incident)[0] == "Nobody to page: no anyone as on-call engineer on call"
    nobody = Message.objects.filter(incident_id=incident.pk, kind="page").get()
    assert nobody.address == "incidents" and "Reach someone by hand" in nobody.body


def test_a_drill_pages_only_its_participants(rota, monkeypatch):
    participant = make_user(role="responder", username="driller")
    monkeypatch.setattr(services, "_drill_participants", [lambda incident: [participant]])
    incident = declare(make_user(role="responder"), severity=Severity.SEV1, is_drill=True)
    services.escalation_sweep()
    assert timeline_pages(incident) == [
        "Paged driller (drill participant)",
        "Notified driller (drill participant)",
    ]
    assert not InboxItem.objects.filter(user__in=rota.values()).exists()
    assert all(
        m.title.startswith("DRILL · ") for m in Message.objects.filter(incident_id=incident.pk, kind="page")
    )


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_perform_each_step_once(rota):
    incidents = [declare(make_user(role="responder"), severity=Severity.SEV1) for _ in range(20)]
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        while services.escalation_sweep():
            pass

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for incident in incidents:
        assert timeline_pages(incident) == ["Paged alice (on-call engineer)", "Notified carl (executive)"]
    assert InboxItem.objects.count() == 40


def test_the_incident_page_shows_the_chain(client, rota):
    incident = declare(make_user(role="responder"), severity=Severity.SEV1)
    services.escalation_sweep()
    client.force_login(rota["lena"])
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    section = page[page.index('id="incident-escalation"') :]
    assert "next: Tech lead at" in section
    assert section.count('data-state="done"') == 2 and section.count('data-state="pending"') == 2
    assert "📟 Paged alice (on-call engineer)" in page  # the timeline row


def test_reopening_starts_a_new_chain_that_pages_again(rota):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        incident = declare(make_user(role="responder"), severity=Severity.SEV3)
        services.escalation_sweep()
        incident_services.incident_acknowledge(incident=incident, actor=rota["alice"])
        incident_services.incident_change_status(
            incident=incident, actor=rota["alice"], to_status=Status.RESOLVED
        )
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        incident_services.incident_change_status(
            incident=incident, actor=rota["alice"], to_status=Status.INVESTIGATING
        )
        services.escalation_sweep()
    with time_machine.travel(start + timedelta(hours=1, minutes=15), tick=False):
        services.escalation_sweep()  # nobody acknowledged the reopened incident: the next step runs
    assert timeline_pages(incident) == [
        "Paged alice (assigned engineer)",
        "Paged alice (assigned engineer)",
        "Paged alice (on-call engineer)",
    ]
    assert list(
        Step.objects.filter(incident=incident)
        .values_list("generation", "state")
        .order_by("generation", "position")
    ) == [
        (1, "done"),
        (1, "cancelled"),
        (2, "done"),
        (2, "done"),
    ]
