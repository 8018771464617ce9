"""The kill switch's metrics (see console/metrics.py): each target's state as the console last read
it, and how long ago a reconcile of it last succeeded."""

from __future__ import annotations

import math
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console import metrics
from console.models import Heartbeat
from killswitch.backends import Condition
from killswitch.models import TargetState
from killswitch.targets import all_targets

# 1 halted, 0 trading; anything else (unevaluable, unreachable, never read) is -1: not seen.
STATE_VALUES = {Condition.HALTED: 1.0, Condition.TRADING: 0.0}


def reconcile_job(target: str) -> str:
    """The Heartbeat each target's reconcile writes (killswitch_reconcile_all)."""
    return f"kill switch {target}"


class KillswitchCollector(Collector):
    """Two queries per scrape: the targets' last observed states, their reconciles' heartbeats."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        targets = list(all_targets())
        states = dict(TargetState.objects.filter(target__in=targets).values_list("target", "condition"))
        jobs = {reconcile_job(t): t for t in targets}
        seen = dict(Heartbeat.objects.filter(name__in=jobs).values_list("name", "last_seen"))
        state = GaugeMetricFamily(
            "cdb_console_killswitch_state",
            "Each kill-switch target as last read: 1 halted, 0 trading, "
            "-1 unevaluable, unreachable or never read.",
            labels=["target"],
        )
        age = GaugeMetricFamily(
            "cdb_console_killswitch_reconcile_age_seconds",
            "Seconds since each target's last successful reconcile (+Inf: never).",
            labels=["target"],
        )
        for target in targets:
            state.add_metric([target], STATE_VALUES.get(states.get(target, ""), -1.0))
            last = seen.get(reconcile_job(target))
            age.add_metric([target], max(0.0, (now - last).total_seconds()) if last else math.inf)
        yield state
        yield age


def register() -> None:
    metrics.register("killswitch", KillswitchCollector())
