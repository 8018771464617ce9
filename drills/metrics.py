"""Drills' metric (see console/metrics.py): whether each drill type is overdue."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console import metrics
from drills import selectors


class DrillsCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cdb_drills_overdue",
            "1 when a drill type has no completed drill within its period plus grace period, else 0.",
            labels=["type"],
        )
        for row in selectors.programme():
            family.add_metric([row.drill_type.slug], 1 if row.overdue else 0)
        yield family


def register() -> None:
    metrics.register("drills", DrillsCollector())
