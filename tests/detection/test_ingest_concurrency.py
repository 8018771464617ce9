"""Alertmanager's HA peers deliver the same alerts at the same moment: one signal, one incident."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detection.models import Signal
from detection.services import AlertInput, signals_ingest
from incidents.models import Incident
from tests.concurrency import THREADS, race


def _alert(fp: str, service: str = "cdb_risk") -> AlertInput:
    return AlertInput(
        source="alertmanager",
        fingerprint=fp,
        status="firing",
        starts_at=datetime(2026, 11, 26, 21, tzinfo=UTC),
        severity=1,
        title=f"ServiceDown {service}",
        group_key=f"alertmanager:alertname=ServiceDown,service={service}",
        component=service,
    )


@pytest.mark.django_db(transaction=True)
def test_simultaneous_duplicate_deliveries_store_once_and_open_one_incident():
    batch = [_alert("a"), _alert("b"), _alert("c", "cdb_market")]
    results = race(lambda i: signals_ingest(batch if i % 2 else list(reversed(batch))))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert Signal.objects.count() == 3
    assert Incident.objects.count() == 2
    assert sum(r.new for r in results) == 3 and sum(r.duplicates for r in results) == 3 * THREADS - 3


@pytest.mark.django_db(transaction=True)
def test_simultaneous_routers_route_each_signal_once_in_order():
    from detection.services import signals_receive, signals_route
    from incidents.models import EventKind, TimelineEvent

    alerts = [_alert(f"fp{i}", f"cdb_{i % 3}") for i in range(30)]
    for alert in alerts:
        signals_receive([alert], wake=False)
    results = race(lambda i: signals_route(batch=7))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 30
    assert not Signal.objects.filter(routed_at__isnull=True).exists()
    assert Incident.objects.count() == 3
    assert TimelineEvent.objects.filter(kind=EventKind.SIGNAL).count() == 30
    for incident in Incident.objects.all():
        # Each incident's timeline lists its alerts in the order they were stored.
        stored = list(incident.signals.order_by("id").values_list("title", flat=True))
        written = [
            m.removeprefix("Firing (alertmanager: ").removesuffix(")")
            for m in incident.events.filter(kind=EventKind.SIGNAL)
            .order_by("id")
            .values_list("message", flat=True)
        ]
        assert written == stored
