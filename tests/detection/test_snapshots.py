"""CDB `/status` snapshots on an incident's timeline, read from real HTTP stand-ins of risk (with its
state file) and execution, and what the post-mortem makes of them."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from detection import snapshots
from detection.models import MonitoredService
from incidents import services as incident_services
from incidents.models import Status, TimelineEvent
from postmortems import services as postmortems
from postmortems.models import PostMortem
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
    return snapshots.status_snapshot_take(incident_id=incident.pk, moment=moment)


def resolve(incident) -> None:
    actor = incident.declared_by
    incident_services.incident_acknowledge(incident=incident, actor=actor)
    incident_services.incident_assign_commander(incident=incident, actor=actor, commander=actor)
    incident_services.incident_change_status(
        incident=incident, actor=actor, to_status=Status.RESOLVED, override_reason="test: resolved"
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


def test_a_task_for_an_incident_that_is_gone_writes_nothing(risk):
    assert snapshots.status_snapshot_take(incident_id=987654, moment="declared") == "no such incident"
    assert not risk.requests


def test_declaring_and_resolving_start_a_snapshot_after_commit_drills_none(
    risk, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as declared:
        incident = declare(severity=1)
    with django_capture_on_commit_callbacks() as resolved:
        resolve(incident)
    with django_capture_on_commit_callbacks() as drill:
        declare(severity=1, is_drill=True)

    def snapshot_starts(callbacks: list) -> int:
        started = [getattr(cb, "func", None) for cb in callbacks]
        return sum(getattr(func, "__module__", "") == "detection.snapshots" for func in started)

    assert (snapshot_starts(declared), snapshot_starts(resolved), snapshot_starts(drill)) == (1, 1, 0)


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
