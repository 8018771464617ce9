"""Incidents' metrics (see console/metrics.py): open incidents, acknowledgements overdue, SLA breaches."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console import metrics
from incidents.models import OPEN_STATUSES, Incident


def _drill(value: bool) -> str:
    return "true" if value else "false"


class IncidentsCollector(Collector):
    """Three grouped counts per scrape (open incidents use the incident_board index)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        grouped = Incident.objects.order_by()
        open_ = GaugeMetricFamily(
            "cdb_console_incidents_open",
            "Open incidents (not resolved or closed), by severity, status and whether a drill.",
            labels=["severity", "status", "drill"],
        )
        for by_status in (
            grouped.filter(status__in=OPEN_STATUSES)
            .values("severity", "status", "is_drill")
            .annotate(n=Count("id"))
        ):
            labels = [str(by_status["severity"]), by_status["status"], _drill(by_status["is_drill"])]
            open_.add_metric(labels, by_status["n"])
        yield open_

        overdue = GaugeMetricFamily(
            "cdb_console_incidents_ack_overdue",
            "Open incidents past their acknowledgement deadline and still not acknowledged.",
            labels=["severity", "drill"],
        )
        for row in (
            grouped.filter(status__in=OPEN_STATUSES, acknowledged_at__isnull=True, ack_due_at__lte=now)
            .values("severity", "is_drill")
            .annotate(n=Count("id"))
        ):
            overdue.add_metric([str(row["severity"]), _drill(row["is_drill"])], row["n"])
        yield overdue

        breaches = CounterMetricFamily(
            "cdb_console_sla_breaches",
            "Incidents whose response SLA was breached (as the SLA sweep recorded them).",
            labels=["severity", "drill"],
        )
        for row in (
            grouped.filter(sla_breached_at__isnull=False)
            .values("severity", "is_drill")
            .annotate(n=Count("id"))
        ):
            breaches.add_metric([str(row["severity"]), _drill(row["is_drill"])], row["n"])
        yield breaches


def register() -> None:
    metrics.register("incidents", IncidentsCollector())
