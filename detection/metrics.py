"""Detection's metrics (see console/metrics.py): signals stored and routed, routing lag, services'
health, and webhook requests by status (counted in each web process)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console import metrics
from detection.models import Health, MonitoredService, Signal

# Not in any registry of its own: /metrics collects it (summed over every web process under gunicorn).
WEBHOOK_REQUESTS = Counter(
    "cdb_console_webhook_requests",
    "Webhook deliveries answered, by source and HTTP status.",
    ["source", "status"],
    registry=None,
)

CHECK_COUNTS = {Health.UP: "checks_up", Health.DEGRADED: "checks_degraded", Health.DOWN: "checks_down"}


class DetectionCollector(Collector):
    """Three queries per scrape: signals by source, the signals waiting, the enabled services."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        stored = CounterMetricFamily(
            "cdb_console_signals_stored",
            "Signals stored (alerts, health and rule transitions).",
            labels=["source"],
        )
        routed = CounterMetricFamily(
            "cdb_console_signals_routed", "Stored signals routed into incidents.", labels=["source"]
        )
        by_source = (
            Signal.objects.order_by().values("source").annotate(n=Count("id"), routed=Count("routed_at"))
        )
        for row in by_source:
            stored.add_metric([row["source"]], row["n"])
            routed.add_metric([row["source"]], row["routed"])
        yield stored
        yield routed

        waiting = Signal.objects.filter(routed_at__isnull=True).aggregate(
            n=Count("id"), oldest=Min("received_at")
        )
        yield GaugeMetricFamily(
            "cdb_console_signals_waiting",
            "Stored signals not yet routed into an incident.",
            value=waiting["n"],
        )
        oldest = waiting["oldest"]
        yield GaugeMetricFamily(
            "cdb_console_routing_lag_seconds",
            "How long the oldest signal waiting for routing has waited (0: none waits).",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )

        state = GaugeMetricFamily(
            "cdb_console_service_state",
            "1 for each enabled service's current (damped) health state, 0 for the others.",
            labels=["service", "state"],
        )
        checks = CounterMetricFamily(
            "cdb_console_health_checks",
            "Health checks recorded, by service and result.",
            labels=["service", "result"],
        )
        for service in MonitoredService.objects.filter(enabled=True).only(
            "name", "state", *CHECK_COUNTS.values()
        ):
            for value in Health.values:
                state.add_metric([service.name, value], 1.0 if service.state == value else 0.0)
            for result, field in CHECK_COUNTS.items():
                checks.add_metric([service.name, result], getattr(service, field))
        yield state
        yield checks


def register() -> None:
    metrics.register("detection", DetectionCollector())
    metrics.register("detection.webhooks", WEBHOOK_REQUESTS, per_process=True)
