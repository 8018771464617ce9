"""Overdue post-mortems on the console home and in /metrics, until published; their deadlines on
the calendar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console.calendar import Event
from console.notices import Notice
from postmortems import selectors
from postmortems.models import PostMortem
from postmortems.review import ReviewStatus


def overdue_notices(user: Any) -> list[Notice]:
    if not user.is_authenticated:
        return []
    late = list(
        selectors.overdue(selectors.postmortems_visible_to(user))
        .select_related("incident")
        .order_by("deadline")[:5]
    )
    return [
        Notice(
            "warning",
            f"The post-mortem of INC-{pm.incident_id} ({pm.title}) was due "
            f"{timezone.localtime(pm.deadline):%a %d %b %H:%M} and is not published.",
            reverse("postmortems:detail", args=[pm.pk]),
            "Post-mortem",
        )
        for pm in late
        if pm.deadline is not None
    ]


class PostMortemCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        open_ = PostMortem.objects.exclude(status=ReviewStatus.PUBLISHED)
        overdue = GaugeMetricFamily(
            "cdb_console_postmortems_overdue", "Post-mortems past their deadline and not yet published."
        )
        overdue.add_metric([], float(open_.filter(deadline__lt=now).count()))
        yield overdue
        by_status = GaugeMetricFamily(
            "cdb_console_postmortems", "Post-mortems by review status.", labels=["status"]
        )
        counts = dict.fromkeys(ReviewStatus.values, 0)
        for status in PostMortem.objects.values_list("status", flat=True).order_by():
            counts[status] = counts.get(status, 0) + 1
        for status, count in counts.items():
            by_status.add_metric([status], float(count))
        yield by_status


def calendar_events(start: datetime, end: datetime, user: Any) -> list[Event]:
    rows = (
        selectors.postmortems_visible_to(user)
        .filter(deadline__gte=start, deadline__lt=end)
        .exclude(status=ReviewStatus.PUBLISHED)
        .only("pk", "incident_id", "title", "deadline")
    )
    return [
        Event(
            kind="postmortem",
            title=f"Post-mortem due: INC-{pm.incident_id} {pm.title}",
            start=pm.deadline,
            url=reverse("postmortems:detail", args=[pm.pk]),
            uid=f"postmortem-{pm.pk}-deadline@cdb-console",
        )
        for pm in rows
        if pm.deadline is not None
    ]
