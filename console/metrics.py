"""Prometheus exposition at /metrics (text format, prometheus-client).

Two kinds of metric, by where the truth is:

- **Read from the database at scrape time.** Each app registers a collector here from its
  AppConfig.ready (`register`), so the console imports no other app. A collector runs a few cheap
  queries (grouped counts on indexed columns) when Prometheus scrapes, and every web process answers
  the same, whichever one the scrape reaches.
- **Counted where the event happens** (webhook requests by status): prometheus-client counters. Under
  gunicorn several processes answer requests, so config/gunicorn.py gives the instance a directory in
  PROMETHEUS_MULTIPROC_DIR; every process writes its counts there (prometheus-client's multiprocess
  mode) and a scrape sums them all. Without that variable (runserver, tests) the counters live in the
  one process. Counting in the database instead would add a write, on one hot row, to every delivery.

Metric names are a public interface (alert rules depend on them): README lists them all.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from console.http import bearer_matches

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# No `_created` series beside each counter: they say when this process started counting, which
# differs by process and helps no alert.
disable_created_metrics()


_DATABASE: dict[str, Collector] = {}
_PROCESS: dict[str, Collector] = {}


def register(name: str, collector: Collector, *, per_process: bool = False) -> None:
    """Add a collector under `name` (registering again replaces it). `per_process`: a prometheus-client
    metric counted in this process, summed across processes in multiprocess mode."""
    (_PROCESS if per_process else _DATABASE)[name] = collector


def registry() -> CollectorRegistry:
    """A fresh registry for one scrape: the database collectors, and the per-process counters (from
    every process's files in multiprocess mode)."""
    scrape = CollectorRegistry(auto_describe=False)
    for collector in _DATABASE.values():
        scrape.register(collector)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(scrape)
    else:
        for collector in _PROCESS.values():
            scrape.register(collector)
    return scrape


def exposition() -> bytes:
    return generate_latest(registry())


def scrape_allowed(request: HttpRequest) -> bool:
    """METRICS_TOKEN as a bearer token, or a peer address in METRICS_ALLOWED_NETWORKS. Neither set:
    nobody (the metrics say what is broken and where; they are never open by default)."""
    if bearer_matches(request, settings.METRICS_TOKEN):
        return True
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


class JobsCollector(Collector):
    """The periodic jobs' heartbeats (one query): age of the last success, and whether failing."""

    def collect(self) -> Iterator[Metric]:
        from console.models import Heartbeat

        now = timezone.now()
        age = GaugeMetricFamily(
            "cdb_console_job_age_seconds",
            "Seconds since each periodic job's last successful run (+Inf: never).",
            labels=["job"],
        )
        failing = GaugeMetricFamily(
            "cdb_console_job_failing", "1 when a periodic job's latest run failed.", labels=["job"]
        )
        for row in Heartbeat.objects.order_by("name"):
            seen = max(0.0, (now - row.last_seen).total_seconds()) if row.last_seen else math.inf
            age.add_metric([row.name], seen)
            failing.add_metric([row.name], 1.0 if row.failing else 0.0)
        yield age
        yield failing
