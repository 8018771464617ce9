"""CDB `/status` snapshots on an incident's timeline, read from real HTTP stand-ins of risk (with its
state file) and execution, and what the post-mortem makes of them. A snapshot is owed as a stored
request (in the transaction of the change that calls for it) and taken by the sweep or a woken
worker: a broker outage or a dead worker delays it and loses none."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from detection import snapshots, tasks
from detection.models import MonitoredService, StatusSnapshotRequest
from incidents import services as incident_services
from incidents.models import Status, TimelineEvent
from postmortems import prefill
from postmortems import services as postmortems
from postmortems.models import PostMortem
from tests.detection.test_routing import CLOSED_BROKER, wait_for
from tests.incidents.factories import declare, make_user
from tests.standins.health import HealthStandIn
from tests.standins.risk_service import RiskServiceStandIn

pytestmark = pytest.mark.django_db


@pytest.fixture
def risk(tmp_path: Path) -> Iterator[RiskServiceStandIn]:
    with RiskServiceStandIn(tmp_path / ".cdb_kill_switch.state", semantics="new") as service:
        MonitoredService.objects.update_or_create(
            name="cdb_risk", defaults={"url": service.url + "/health", "enabled": True, "core": True}
        )
        yield service


@pytest.fixture
def execution() -> Iterator[HealthStandIn]:
    service = HealthStandIn("execution").start()
    MonitoredService.objects.update_or_create(
        name="cdb_execution", defaults={"url": service.url, "enabled": True, "core": True}
    )
    yield service
    service.stop()


def rows(incident) -> list[TimelineEvent]:
    return list(TimelineEvent.objects.filter(incident=incident, kind=snapshots.KIND).order_by("id"))


def take(incident, moment: str) -> str:
    """Take the snapshot the incident owes for `moment` (owed now if nothing owed it yet)."""
    request, _ = StatusSnapshotRequest.objects.get_or_create(
        incident=incident, moment=moment, defaults={"requested_at": timezone.now()}
    )
    return snapshots.status_request_take(request.pk)


def resolve(incident) -> None:
    actor = incident.declared_by
    incident_services.incident_acknowledge(incident=incident, actor=actor)
    incident_services.incident_assign_commander(incident=incident, actor=actor, commander=actor)
    resolve_again(incident)


def resolve_again(incident) -> None:
    incident_services.incident_change_status(
        incident=incident,
        actor=incident.declared_by,
        to_status=Status.RESOLVED,
        override_reason="test: resolved",
    )


def test_the_status_urls_are_the_enabled_services_status_beside_their_health(risk, execution):
    assert snapshots.status_urls() == [
        ("cdb_risk", f"{risk.url}/status"),
        ("cdb_execution", f"{execution.base_url}/status"),
    ]
    MonitoredService.objects.filter(name="cdb_execution").update(enabled=False)
    assert [name for name, _ in snapshots.status_urls()] == ["cdb_risk"]


def test_a_snapshot_records_risk_state_and_counters_once_per_moment(risk, execution):
    risk.set_risk_state(total_exposure=12500.5, open_positions=2, pending_orders=3)
    risk.set_stats(orders_blocked=40)
    execution.set_status_stats(orders_rejected=7)
    incident = declare(severity=1)
    assert take(incident, "declared") == "taken"
    for _ in range(2):  # at-least-once: a redelivered task asks nothing and writes nothing
        assert take(incident, "declared") == "done before"
    [row] = rows(incident)
    assert row.data["risk_state"]["total_exposure"] == 12500.5
    assert (row.data["orders_blocked"], row.data["stats"]["orders_rejected"]) == (40, 7)
    assert row.message == (
        "CDB status at declaration: exposure 12,500.50 USD, 2 open positions, 3 pending orders, "
        "40 orders blocked, 7 orders rejected"
    )
    assert [r.path for r in risk.requests if r.path == "/status"] == ["/status"]


def test_an_unanswering_service_is_named_and_none_answering_writes_no_figures(risk, execution):
    execution.set_mode("stopped")
    incident = declare(severity=1)
    assert take(incident, "declared") == "taken"
    assert "not answering: cdb_execution: ConnectError" in rows(incident)[0].message
    risk.stop()
    assert take(incident, "resolved") == "unavailable"
    last = rows(incident)[-1]
    assert "risk_state" not in last.data and last.message.startswith("CDB status at resolution unavailable")


def test_without_configured_services_nothing_is_asked_or_written(settings):
    settings.CDB_STATUS_SERVICES = []
    incident = declare(severity=1)
    assert take(incident, "declared") == "not configured" and rows(incident) == []


def test_declaring_and_resolving_owe_a_snapshot_in_their_transaction_drills_none(risk):
    incident = declare(severity=1)
    resolve(incident)
    declare(severity=1, is_drill=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        declare(severity=1, title="rolled back")
        raise RuntimeError("the declaration fails after its timeline row")
    # Reopened and resolved again: the resolution's snapshot is owed once.
    incident_services.incident_change_status(
        incident=incident, actor=incident.declared_by, to_status="investigating"
    )
    resolve_again(incident)
    owed = StatusSnapshotRequest.objects.values_list("incident_id", "moment")
    assert sorted(owed) == [(incident.pk, "declared"), (incident.pk, "resolved")]
    assert not risk.requests, "nothing is asked inside the declaring transaction"
    assert snapshots.status_snapshots_take() == {"taken": 2}
    assert snapshots.status_snapshots_take() == {}
    assert [r.data["moment"] for r in rows(incident)] == ["declared", "resolved"]


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_declaration_stands_and_the_sweep_takes_the_snapshot(
    risk, settings, monkeypatch
):
    """The wake-up after commit fails (nothing listens on the broker's port): declaring is not
    slowed or refused, the owed snapshot waits in the database, and beat's sweep takes it."""
    from config.celery import app

    settings.WAKE_WORKERS = True
    connect = app.connection_for_write
    monkeypatch.setattr(app, "connection_for_write", lambda url=None, **kw: connect(CLOSED_BROKER, **kw))
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    failed = snapshots.wake_snapshots.failed
    incident = declare(severity=1)
    assert wait_for(lambda: snapshots.wake_snapshots.failed == failed + 1, 30)
    request = StatusSnapshotRequest.objects.get(incident=incident)
    assert request.done_at is None and rows(incident) == []
    monkeypatch.undo()
    assert tasks.take_status_snapshots() == {"taken": 1}
    [row] = rows(incident)
    assert row.data["request"] == request.pk and "risk_state" in row.data


def test_a_worker_killed_mid_snapshot_leaves_it_to_the_next_after_its_lease(risk):
    incident = declare(severity=1)
    request = StatusSnapshotRequest.objects.get(incident=incident)
    start = timezone.now()
    assert snapshots._claim(request.pk, start)  # a worker took it and died before writing
    assert snapshots.status_snapshots_take(now=start + timedelta(seconds=5)) == {}  # leased: left alone
    assert snapshots.status_request_take(request.pk, now=start + timedelta(seconds=5)) == "busy"
    later = start + timedelta(seconds=snapshots.LEASE_SECONDS + 1)
    assert snapshots.status_snapshots_take(now=later) == {"taken": 1}
    assert len(rows(incident)) == 1
    request.refresh_from_db()
    assert (request.attempts, request.outcome) == (2, "taken")
    assert snapshots.status_request_take(request.pk, now=later) == "done before"


def test_two_workers_on_one_request_write_one_row(risk):
    """Both pass the lease (the first's expired while it waited on the network): the row lock and
    the closed request let only one write."""
    incident = declare(severity=1)
    request = StatusSnapshotRequest.objects.get(incident=incident)
    data = {"moment": "declared", "request": request.pk, "services": [], "errors": {}}
    assert snapshots._close(request.pk, "taken", message="first", data=data) == "taken"
    assert snapshots._close(request.pk, "taken", message="second", data=data) == "done before"
    assert [r.message for r in rows(incident)] == ["first"]


def test_a_snapshot_no_worker_took_in_time_is_closed_as_missed_and_said(risk, settings):
    settings.CDB_STATUS_MISSED_AFTER = 600
    incident = declare(severity=1)
    later = timezone.now() + timedelta(seconds=601)
    assert snapshots.status_snapshots_take(now=later) == {"missed": 1}
    [row] = rows(incident)
    assert row.message == "CDB status at declaration not taken: no worker took it within 10 min of its moment"
    assert "risk_state" not in row.data and not risk.requests
    assert prefill.status_snapshot(incident) == (None, None)


def test_a_late_snapshot_says_how_late(risk):
    incident = declare(severity=1)
    StatusSnapshotRequest.objects.filter(incident=incident).update(
        requested_at=timezone.now() - timedelta(minutes=4)
    )
    assert snapshots.status_snapshots_take() == {"taken": 1}
    assert rows(incident)[0].message.endswith(", taken 4 min after its moment")


def test_the_postmortem_takes_exposure_and_orders_affected_from_the_snapshots(risk, execution):
    risk.set_risk_state(total_exposure=9000.0)
    risk.set_stats(orders_blocked=100)
    execution.set_status_stats(orders_rejected=5)
    incident = declare(severity=1, actor=make_user(role="responder"))
    assert take(incident, "declared") == "taken"
    # By resolution exposure is down again and the counters have grown while trading was halted.
    risk.set_risk_state(total_exposure=4000.0)
    risk.set_stats(orders_blocked=130)
    execution.set_status_stats(orders_rejected=9)
    resolve(incident)
    pm = PostMortem.objects.get(incident=incident)
    assert pm.current_revision == 1  # pre-filled from the declaration's snapshot alone
    assert take(incident, "resolved") == "taken"
    pm.refresh_from_db()
    # (130 + 9) - (100 + 5) orders turned away during the incident; the highest exposure seen.
    assert (pm.orders_affected, pm.exposure_usd) == (34, Decimal("9000.00"))
    assert pm.current_revision == 2
    body = pm.revisions.get(number=2).body
    assert "- 34 orders affected\n- 9000.0 USD exposure" in body


def test_a_postmortem_someone_edited_keeps_its_numbers(risk):
    risk.set_risk_state(total_exposure=100.0)
    incident = declare(severity=1)
    take(incident, "declared")
    resolve(incident)
    pm = PostMortem.objects.get(incident=incident)
    first = pm.revisions.get(number=1).body
    postmortems.revision_save(
        postmortem=pm, actor=pm.author, body=first.replace("[1-2 sentence summary]", "Risk stalled."), base=1
    )
    risk.set_risk_state(total_exposure=999.0)
    assert take(incident, "resolved") == "taken"
    pm.refresh_from_db()
    assert (pm.exposure_usd, pm.current_revision) == (Decimal("100.00"), 2)


def test_snapshots_taken_after_the_postmortem_exists_each_update_it_while_untouched(risk, execution):
    """The worker was away for the whole incident: both snapshots arrive after the post-mortem was
    pre-filled without numbers, and each becomes a revision of its own."""
    risk.set_risk_state(total_exposure=700.0)
    risk.set_stats(orders_blocked=10)
    incident = declare(severity=1)
    resolve(incident)
    pm = PostMortem.objects.get(incident=incident)
    assert (pm.current_revision, pm.orders_affected, pm.exposure_usd) == (1, None, None)
    owed = dict(StatusSnapshotRequest.objects.values_list("moment", "pk"))
    assert snapshots.status_request_take(owed["declared"]) == "taken"
    risk.set_risk_state(total_exposure=900.0)
    risk.set_stats(orders_blocked=25)
    assert snapshots.status_request_take(owed["resolved"]) == "taken"
    pm.refresh_from_db()
    assert pm.current_revision == 3  # the declaration's reading, then the resolution's
    assert (pm.exposure_usd, pm.orders_affected) == (Decimal("900.00"), 15)
    assert list(pm.revisions.values_list("author", flat=True)) == [None, None, None]


# --- Asked for from the incident page ---------------------------------------------------------


def test_a_responder_asks_for_a_snapshot_and_a_worker_takes_it(client, risk, responder):
    incident = declare(severity=2)
    snapshots.status_snapshots_take()  # the declaration's
    client.force_login(responder)
    url = reverse("detection:status_snapshot", args=[incident.pk])
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'id="incident-cdb-status"' in page and "Take a status snapshot" in page
    first = client.post(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200
    assert 'data-testid="snapshot-pending"' in first.content.decode()
    assert f"asked by {responder.username}" in first.content.decode()
    again = client.post(url)  # a second click while one is owed: the same request
    assert again.status_code == 302
    owed = StatusSnapshotRequest.objects.get(incident=incident, moment="requested")
    assert owed.requested_by == responder and owed.done_at is None
    risk.set_risk_state(total_exposure=321.0)
    assert snapshots.status_snapshots_take() == {"taken": 1}
    last = rows(incident)[-1]
    assert last.message.startswith("CDB status on request: exposure 321.00 USD")
    assert last.message.endswith(f"(asked by {responder.username})")
    # Taken: the panel offers the button again.
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "snapshot-pending" not in page and "Take a status snapshot" in page


def test_asking_is_refused_with_a_reason_for_drills_resolved_incidents_and_without_services(
    client, risk, settings, responder
):
    client.force_login(responder)
    drill = declare(severity=2, is_drill=True)
    answer = client.post(reverse("detection:status_snapshot", args=[drill.pk]), HTTP_HX_REQUEST="true")
    assert answer.status_code == 422 and "drill review" in answer.content.decode()
    done = declare(severity=4, actor=responder)
    resolve(done)
    answer = client.post(reverse("detection:status_snapshot", args=[done.pk]), follow=True)
    assert "its resolution&#x27;s snapshot is its last" in answer.content.decode()
    settings.CDB_STATUS_SERVICES = []
    open_one = declare(severity=3)
    answer = client.post(reverse("detection:status_snapshot", args=[open_one.pk]), HTTP_HX_REQUEST="true")
    assert answer.status_code == 422 and "No CDB service answers status snapshots" in answer.content.decode()
    assert not StatusSnapshotRequest.objects.filter(moment="requested").exists()
    page = client.get(reverse("incidents:detail", args=[open_one.pk])).content.decode()
    assert "incident-cdb-status" not in page  # nothing to ask: no button


def test_a_viewer_sees_no_button_and_may_not_ask(client, risk, viewer):
    incident = declare(severity=2)
    client.force_login(viewer)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "incident-cdb-status" not in page
    assert client.post(reverse("detection:status_snapshot", args=[incident.pk])).status_code == 403
    assert not StatusSnapshotRequest.objects.filter(moment="requested").exists()
