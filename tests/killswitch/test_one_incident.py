"""One halt, one incident: reconcile and the Prometheus rule on risk_kill_switch_active serialise on
the same row (the signal group `killswitch:<target>`), whichever notices the halt first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from detection.models import SignalGroup
from detection.services import AlertInput, signals_ingest
from incidents.models import Incident, Severity
from killswitch import services
from killswitch.backends import Condition
from killswitch.models import Action, AuditRecord
from tests.concurrency import race
from tests.killswitch.test_reconcile import cdb_circuit_breaker


def prometheus_alert() -> None:
    """What the `kill-switch-active` rule (detection/data/prometheus_rules.yaml) fires."""
    signals_ingest(
        [
            AlertInput(
                source="prometheus",
                fingerprint="kill-switch-active",
                status="firing",
                starts_at=datetime.now(UTC),
                severity=1,
                title="kill-switch-active: risk_kill_switch_active > 0",
                group_key="killswitch:production",
            )
        ]
    )


def assert_one_incident() -> Incident:
    [incident] = Incident.objects.all()
    assert incident.severity == Severity.SEV1 and incident.is_open
    assert SignalGroup.objects.get(key="killswitch:production").incident_id == incident.pk
    record = AuditRecord.objects.get(action=Action.EXTERNAL_CHANGE, state_after__condition=Condition.HALTED)
    assert record.incident_id == incident.pk
    assert incident.signals.count() == 1
    return incident


@pytest.mark.django_db
def test_reconcile_first_then_the_alert_joins_its_incident(ks_files: Any) -> None:
    services.killswitch_reconcile(target="production")
    cdb_circuit_breaker(ks_files.production)
    services.killswitch_reconcile(target="production")
    prometheus_alert()
    assert_one_incident()


@pytest.mark.django_db
def test_the_alert_first_then_reconcile_joins_its_incident(ks_files: Any) -> None:
    services.killswitch_reconcile(target="production")
    cdb_circuit_breaker(ks_files.production)
    prometheus_alert()
    services.killswitch_reconcile(target="production")
    incident = assert_one_incident()
    latest = incident.events.order_by("-id").first()
    assert latest is not None and "outside the console" in latest.message


@pytest.mark.django_db
def test_an_alert_incident_below_sev1_is_raised_when_the_halt_joins(ks_files: Any, responder: Any) -> None:
    from tests.incidents.factories import declare

    services.killswitch_reconcile(target="production")
    incident = declare(responder, severity=Severity.SEV3)
    SignalGroup.objects.create(key="killswitch:production", incident=incident)
    cdb_circuit_breaker(ks_files.production)
    services.killswitch_reconcile(target="production")
    incident.refresh_from_db()
    assert Incident.objects.count() == 1 and incident.severity == Severity.SEV1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_reconcile_and_the_alert_at_once_open_one_incident(ks_files: Any, attempt: int) -> None:
    services.killswitch_reconcile(target="production")
    cdb_circuit_breaker(ks_files.production)

    def notice(i: int) -> object:
        if i % 2:
            prometheus_alert()
            return None
        return services.killswitch_reconcile(target="production")

    results = race(notice, threads=2)
    assert not [r for r in results if isinstance(r, Exception)], results
    connection.close()
    assert_one_incident()
