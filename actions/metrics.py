"""Action items' metric (see console/metrics.py): overdue items, real incidents and drills apart."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actions.models import ACTIVE_STATUSES, ActionItem, Origin
from console import metrics


class ActionItemsCollector(Collector):
    """One grouped count per scrape (the actionitem_overdue partial index)."""

    def collect(self) -> Iterator[Metric]:
        overdue = GaugeMetricFamily(
            "cdb_console_action_items_overdue",
            "Action items still open past their due date, by origin and whether from a drill.",
            labels=["origin", "drill"],
        )
        counts = {(o, d): 0 for o in Origin.values for d in ("false", "true")}
        for row in (
            ActionItem.objects.order_by()
            .filter(status__in=ACTIVE_STATUSES, due__lt=timezone.localdate())
            .values("origin", "incident__is_drill")
            .annotate(n=Count("id"))
        ):
            counts[(row["origin"], "true" if row["incident__is_drill"] else "false")] = row["n"]
        for (origin, drill), n in counts.items():
            overdue.add_metric([origin, drill], n)
        yield overdue


def register() -> None:
    metrics.register("actions", ActionItemsCollector())
