"""Detection reads: the status board, an incident's signals, and the console's own liveness.

Every function here costs a fixed number of queries, however many services, results or signals exist:
the board and the liveness indicator are polled every few seconds by every open page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db.models import Count, Min, Prefetch
from django.utils import timezone

from console.selectors import Job, Liveness, age_since, liveness
from detection.models import Health, HealthResult, MonitoredService, PrometheusRule, Signal
from detection.services import safe_links

TREND_POINTS = 30
RECENT_SIGNALS = 50
INCIDENT_SIGNALS = 50

# The sparkline's drawing box (SVG user units): one bar per check, oldest on the left.
TREND_BAR, TREND_GAP, TREND_HEIGHT = 2.0, 1.0, 20.0


def _age(then: datetime | None, now: datetime) -> str:
    return age_since(then, now)


# --- Links ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    url: str
    label: str


def links_of(signal: Signal) -> list[Link]:
    """The signal's links, filtered once more on the way out: a row written by any other path (admin,
    a future source) still cannot turn `javascript:` or `data:` into a link."""
    urls = safe_links(*signal.links) if isinstance(signal.links, list) else []
    return [Link(url=u, label=urlsplit(u).netloc[:60] or u[:60]) for u in urls]


@dataclass(frozen=True)
class SignalRow:
    signal: Signal
    links: list[Link]


# Lists load only what they show: labels and annotations can each hold a webhook body's worth of text,
# and a sender's starts_at/ends_at can be a time PostgreSQL stores but Python cannot read (year 10000).
_SIGNAL_LIST_FIELDS = (
    "id",
    "source",
    "fingerprint",
    "status",
    "severity",
    "title",
    "links",
    "received_at",
    "incident_id",
)


def recent_signals(*, limit: int = RECENT_SIGNALS) -> list[SignalRow]:
    """The newest signals of every source (one query); the incident is linked by id, no join needed."""
    qs = Signal.objects.only(*_SIGNAL_LIST_FIELDS).order_by("-received_at", "-id")
    return [SignalRow(signal=s, links=links_of(s)) for s in qs[:limit]]


def signals_for_incident(incident: Any, *, limit: int = INCIDENT_SIGNALS) -> list[SignalRow]:
    """The alerts and signals attached to an incident, newest first (one query, uses signal_by_incident)."""
    qs = (
        Signal.objects.filter(incident=incident)
        .only(*_SIGNAL_LIST_FIELDS, "summary")
        .order_by("-received_at", "-id")
    )
    return [SignalRow(signal=s, links=links_of(s)) for s in qs[:limit]]


# --- Services and their latency trend ----------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    status: str
    label: str


@dataclass(frozen=True)
class Trend:
    """An SVG bar sparkline drawn with attributes and classes only (the CSP forbids inline styles)."""

    bars: list[Bar]
    width: float
    height: float
    summary: str


def trend_of(results: list[HealthResult]) -> Trend:
    """Bars scaled to the slowest check shown; a check without a latency (down, timed out) is a full
    bar in its status colour, so an outage reads as a wall, not as a gap."""
    ordered = sorted(results, key=lambda r: r.checked_at)
    latencies = [r.latency_ms for r in ordered if r.latency_ms is not None]
    top = max(latencies, default=0.0) or 1.0
    bars = []
    for i, r in enumerate(ordered):
        if r.latency_ms is None:
            height, label = TREND_HEIGHT, f"{r.get_status_display()}, no latency"
        else:
            height = max(1.0, round(r.latency_ms / top * TREND_HEIGHT, 2))
            label = f"{r.get_status_display()}, {r.latency_ms:.0f} ms"
        at = timezone.localtime(r.checked_at).strftime("%H:%M:%S")
        bars.append(
            Bar(
                x=i * (TREND_BAR + TREND_GAP),
                y=round(TREND_HEIGHT - height, 2),
                height=height,
                status=r.status,
                label=f"{at} {label}",
            )
        )
    if latencies:
        summary = f"last {len(ordered)} checks: {min(latencies):.0f} to {max(latencies):.0f} ms"
    else:
        summary = f"last {len(ordered)} checks: no latency measured" if ordered else "no checks yet"
    width = max(1.0, TREND_POINTS * (TREND_BAR + TREND_GAP) - TREND_GAP)
    return Trend(bars=bars, width=width, height=TREND_HEIGHT, summary=summary)


@dataclass(frozen=True)
class ServiceRow:
    service: MonitoredService
    checked_age: str
    trend: Trend


@dataclass(frozen=True)
class RuleRow:
    rule: PrometheusRule
    evaluated_age: str


@dataclass(frozen=True)
class Board:
    core: list[ServiceRow]
    other: list[ServiceRow]
    counts: dict[str, int]
    rules: list[RuleRow]
    signals: list[SignalRow]
    now: datetime
    waiting: int = 0  # stored signals not yet routed into incidents (a worker is behind or stopped)
    waiting_age: str = ""
    failing_jobs: tuple[Job, ...] = ()  # periodic jobs whose latest run failed (console Heartbeats)
    liveness: Liveness | None = None  # read once: the page's top bar shows it too


def board(*, now: datetime | None = None) -> Board:
    """Everything the status board shows, in six queries whatever the data's size: services, their
    last TREND_POINTS results (one windowed prefetch), rules, recent signals, signals waiting, and
    the periodic jobs (the kill switch's reconcile of each target among them) whose last run failed."""
    now = now or timezone.now()
    recent = HealthResult.objects.only("id", "service_id", "checked_at", "status", "latency_ms").order_by(
        "-checked_at"
    )[:TREND_POINTS]
    services = MonitoredService.objects.prefetch_related(
        Prefetch("results", queryset=recent, to_attr="recent_results")
    ).order_by("-core", "name")
    rows = [
        ServiceRow(
            service=s,
            checked_age=_age(s.last_checked_at, now),
            trend=trend_of(s.recent_results),
        )
        for s in services
    ]
    counts = dict.fromkeys(Health.values, 0)
    for row in rows:
        if row.service.enabled:
            counts[row.service.state] = counts.get(row.service.state, 0) + 1
    rules = [
        RuleRow(rule=r, evaluated_age=_age(r.last_evaluated_at, now)) for r in PrometheusRule.objects.all()
    ]
    live = liveness(now=now)
    waiting = Signal.objects.filter(routed_at__isnull=True).aggregate(
        n=Count("id"), oldest=Min("received_at")
    )
    return Board(
        waiting=waiting["n"],
        waiting_age=_age(waiting["oldest"], now) if waiting["n"] else "",
        core=[r for r in rows if r.service.core],
        other=[r for r in rows if not r.service.core],
        counts=counts,
        rules=rules,
        signals=recent_signals(),
        now=now,
        failing_jobs=tuple(job for job in live.jobs if job.failing),
        liveness=live,
    )
