"""The pre-recovery facts detection knows (playbook section 7): core services healthy, the recovery
rules quiet, and none of the incident's alerts still firing."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from console.selectors import age_since
from detection.models import (
    Health,
    MonitoredService,
    PrometheusRule,
    RulePurpose,
    RuleState,
    Signal,
    SignalStatus,
)
from incidents import facts
from incidents.facts import Fact
from incidents.models import Incident


def services_healthy(incident: Incident) -> Fact:
    core = list(MonitoredService.objects.filter(core=True, enabled=True).order_by("name"))
    if not core:
        return Fact(None, "Health polling watches no core service (enable them: manage.py load_services)")
    now = timezone.now()
    stale = timedelta(seconds=3 * settings.HEALTH_POLL_SECONDS + 30)
    old = [s.name for s in core if s.last_checked_at is None or now - s.last_checked_at > stale]
    bad = [f"{s.name} {s.state}" for s in core if s.state != Health.UP]
    if bad:
        return Fact(False, "Not healthy: " + ", ".join(bad))
    if old:
        return Fact(None, "Not checked lately: " + ", ".join(old))
    newest = max(s.last_checked_at for s in core if s.last_checked_at)
    return Fact(True, f"{len(core)} core services up (checked {age_since(newest, now)} ago)")


def metrics_normal(incident: Incident) -> Fact:
    if not settings.PROMETHEUS_URL:
        return Fact(None, "Prometheus is not configured (PROMETHEUS_URL): the metrics cannot be checked")
    rules = list(PrometheusRule.objects.filter(purpose=RulePurpose.RECOVERY, enabled=True).order_by("name"))
    if not rules:
        return Fact(None, "No recovery rule is enabled (manage.py load_prometheus_rules)")
    now = timezone.now()
    stale = timedelta(seconds=3 * settings.PROMETHEUS_EVAL_SECONDS + 30)
    failing = [f"{r.name} {r.state}" for r in rules if r.state in (RuleState.FIRING, RuleState.PENDING)]
    broken = [r.name for r in rules if r.state == RuleState.ERROR]
    old = [r.name for r in rules if r.last_evaluated_at is None or now - r.last_evaluated_at > stale]
    if failing:
        return Fact(False, "Above the threshold: " + ", ".join(failing))
    if broken or old:
        return Fact(None, "Not evaluated: " + ", ".join(broken + old))
    return Fact(True, "Error rate and latency within the playbook's thresholds")


def no_pending_alerts(incident: Incident) -> Fact:
    """An alert of the incident is pending while it fired and no later signal resolved it. Two
    queries, whatever the number of its signals."""
    mine = Signal.objects.filter(incident=incident)
    resolved_later = Signal.objects.filter(
        incident=incident,
        source=OuterRef("source"),
        fingerprint=OuterRef("fingerprint"),
        status=SignalStatus.RESOLVED,
        received_at__gte=OuterRef("received_at"),
    )
    firing = list(
        mine.filter(status=SignalStatus.FIRING)
        .exclude(Exists(resolved_later))
        .order_by()
        .values_list("title", flat=True)
        .distinct()[:4]
    )
    if firing:
        shown = "; ".join(t[:80] for t in firing[:3])
        return Fact(False, f"Still firing: {shown}{' …' if len(firing) > 3 else ''}")
    return Fact(True, "No alert of this incident is firing" if mine.exists() else "No alert is attached")


def register() -> None:
    facts.register("services_healthy", services_healthy)
    facts.register("metrics_normal", metrics_normal)
    facts.register("no_pending_alerts", no_pending_alerts)
