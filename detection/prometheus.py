"""Prometheus rules: PromQL evaluated through Prometheus's HTTP API, turned into signals.

A rule *holds* when any series of its instant query compares true against its threshold (NaN never
does: ``0/0`` is "no data", not "above 5 %"). Each rule runs Prometheus's own alert state machine:

    inactive --holds--> pending --holds for `for_seconds`--> firing --no longer holds--> inactive
                          '--------no longer holds (never fired: no signal)--------------^

Firing and resolving are signals (``detection.services.signals_ingest``): source ``prometheus``,
fingerprint ``rule:<name>``, group ``prometheus:<name>``, ``starts_at`` = when the rule started to
hold (``pending_since``). The pair (fingerprint, starts_at) names one episode, so a repeated or
concurrent run cannot open a second incident for it.

A query error (bad expression, Prometheus's own query timeout) puts the rule in ``error`` with
``last_error``; it never fires. Its episode (``pending_since``) survives the error, as an alert's
state survives a failed evaluation in Prometheus: a rule that was firing and holds again after an
error is the same episode (its firing signal is a duplicate, nothing new opens).

Prometheus not answering (connection refused, timeout, 5xx, or something that is not its API) is
itself a signal: "monitoring blind", SEV-3 (the playbook's "missing metrics"), fingerprint and
group ``prometheus:blind``. Rules keep their states while blind: nothing is known about them.
The outage's start is not stored separately: it is the ``starts_at`` of the newest blind signal
when that signal is a firing one. Reading it under the blind group's row lock makes it one signal
per outage however many runs (or concurrent runs) see the outage, and the resolved signal carries
the same start.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.services import heartbeat
from detection import outbound
from detection.models import (
    Comparison,
    PrometheusRule,
    RulePurpose,
    RuleState,
    Signal,
    SignalGroup,
    SignalStatus,
    Source,
)
from detection.services import AlertInput, signals_ingest
from incidents.models import IncidentType

log = logging.getLogger(__name__)

RULES_FILE = Path(__file__).resolve().parent / "data" / "prometheus_rules.yaml"
DEFAULT_TIMEOUT = 5.0  # seconds per query; settings.PROMETHEUS_TIMEOUT overrides
HEARTBEAT = "prometheus"
BLIND_FINGERPRINT = "prometheus:blind"
BLIND_GROUP = "prometheus:blind"
BLIND_SEVERITY = 3  # playbook SEV-3 "Missing metrics"
BLIND_COMPONENT = "cdb_prometheus"
MAX_SERIES_SHOWN = 10
CLIENT_OPTIONS = outbound.CLIENT_OPTIONS  # straight to the configured Prometheus

Labels = dict[str, str]
Sample = tuple[Labels, float]

COMPARE: dict[str, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}

# Prometheus's own error answers that say "I am not able to work", not "this query is wrong".
_SERVER_ERROR_TYPES = frozenset({"unavailable", "internal"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class PrometheusError(Exception):
    """A query could not be evaluated."""


class QueryError(PrometheusError):
    """Prometheus answered, but this query failed (bad expression, range vector, its query timeout)."""


class Unreachable(PrometheusError):
    """Prometheus did not answer as Prometheus: connection error, timeout, 5xx, not its API."""


# ---------------------------------------------------------------------------------------------
# Querying
# ---------------------------------------------------------------------------------------------


def query(
    url: str, expr: str, timeout: float = DEFAULT_TIMEOUT, *, client: httpx.Client | None = None
) -> list[Sample]:
    """Evaluate `expr` as an instant query (GET {url}/api/v1/query): one (labels, value) per series.

    A scalar result is one sample with no labels. Values are floats, so "NaN" and "+Inf" come
    through as such. Raises QueryError when Prometheus rejects the query, Unreachable when it does
    not answer (or answers with something that is not its API: a proxy page, a wrong URL).
    """
    try:
        outbound.check_url(url)
    except ValueError as exc:
        raise Unreachable(f"not queried: {exc}") from exc
    timeout = outbound.bounded_timeout(timeout)
    endpoint = url.rstrip("/") + "/api/v1/query"
    # Plain seconds: Prometheus reads "2.5" as a float, but refuses "2.5s" (bad_data).
    params = {"query": expr, "timeout": f"{timeout:g}"}
    try:
        if client is None:
            response = httpx.get(endpoint, params=params, timeout=timeout, **CLIENT_OPTIONS)
        else:
            response = client.get(endpoint, params=params, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise Unreachable(f"timed out after {timeout:g} s") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}"[:300]) from exc
    return _parse(response)


def _parse(response: httpx.Response) -> list[Sample]:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
        kind = f"HTTP {status}" if status >= 500 else f"HTTP {status}, not Prometheus's API"
        raise Unreachable(f"{kind}: {_snippet(response.text)}")
    if body["status"] == "error":
        error_type = str(body.get("errorType", ""))
        message = f"{error_type or 'error'}: {body.get('error', '')}"[:300]
        if error_type in _SERVER_ERROR_TYPES or (status >= 500 and not error_type):
            raise Unreachable(f"HTTP {status} {message}"[:300])
        raise QueryError(message)
    if status >= 300:
        raise Unreachable(f"HTTP {status} with a success body")
    data = body.get("data")
    if not isinstance(data, dict):
        raise QueryError("bad answer: no data")
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        return [({}, _value(result))]
    if result_type == "vector" and isinstance(result, list):
        samples = []
        for item in result:
            if not isinstance(item, dict):
                raise QueryError("bad answer: vector item is not an object")
            metric = item.get("metric") or {}
            if not isinstance(metric, dict):
                raise QueryError("bad answer: metric labels are not an object")
            samples.append(({str(k): str(v) for k, v in metric.items()}, _value(item.get("value"))))
        return samples
    if result_type == "matrix":
        raise QueryError("range vector result: a rule needs an instant vector or a scalar")
    raise QueryError(f"unsupported result type {result_type!r}")


def _value(pair: Any) -> float:
    """Prometheus sends [timestamp, "value"]; the value is a string ("1", "NaN", "+Inf")."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise QueryError(f"bad answer: sample {str(pair)[:80]}")
    try:
        return float(pair[1])
    except ValueError as exc:
        raise QueryError(f"bad answer: value {pair[1][:40]!r}") from exc


def _snippet(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()[:120] or "(empty body)"


# ---------------------------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------------------------


def offending(samples: list[Sample], comparison: str, threshold: float) -> list[Sample]:
    """The samples that make the rule hold, most extreme first. NaN never holds."""
    compare = COMPARE[comparison]
    hits = [(labels, v) for labels, v in samples if not math.isnan(v) and compare(v, threshold)]
    if comparison in (Comparison.LT, Comparison.LE):
        hits.sort(key=lambda s: s[1])
    elif comparison in (Comparison.GT, Comparison.GE):
        hits.sort(key=lambda s: -s[1])
    return hits


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.6g}"


def format_labels(labels: Mapping[str, str]) -> str:
    """PromQL-style `{job="cdb_risk", instance="…"}`, without __name__, control characters removed."""
    shown = [(k, v) for k, v in sorted(labels.items()) if k != "__name__"]
    inner = ", ".join(f'{_clean(k)}="{_clean(v)[:80]}"' for k, v in shown)
    name = _clean(labels.get("__name__", ""))
    return f"{name}{{{inner}}}" if inner or not name else name


def _clean(value: str) -> str:
    return _CONTROL.sub(" ", str(value)).strip()


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def rules_evaluate(now: datetime | None = None, *, client: httpx.Client | None = None) -> dict[str, str]:
    """Evaluate every enabled rule once and move its state; returns {rule name: state}.

    Empty settings.PROMETHEUS_URL: does nothing and returns {}. Rules run in severity order, so if
    Prometheus goes away mid-run, the most severe were evaluated first; the rest keep their state
    and the run raises (or resolves) the "monitoring blind" signal instead.
    """
    url = (getattr(settings, "PROMETHEUS_URL", "") or "").strip()
    if not url:
        return {}
    timeout = float(getattr(settings, "PROMETHEUS_TIMEOUT", DEFAULT_TIMEOUT))
    rules = list(PrometheusRule.objects.filter(enabled=True).order_by("severity", "name"))
    states = {rule.name: str(rule.state) for rule in rules}
    outage: str | None = None
    reached = False
    own_client = client is None
    http = client or httpx.Client(timeout=timeout, **CLIENT_OPTIONS)
    try:
        for rule in rules:
            try:
                samples = query(url, rule.expr, timeout, client=http)
            except Unreachable as exc:
                outage = str(exc)
                break
            except QueryError as exc:
                reached = True
                states[rule.name] = _apply_error(rule.pk, str(exc), _now(now))
                continue
            reached = True
            states[rule.name] = _apply(rule.pk, samples, _now(now))
        if outage is None and not reached:
            # No rules (or none evaluated): still find out whether the console can see.
            try:
                query(url, "vector(1)", timeout, client=http)
            except Unreachable as exc:
                outage = str(exc)
            except QueryError:
                pass
    finally:
        if own_client:
            http.close()
    if outage is not None:
        log.warning("Prometheus at %s is unreachable: %s", _display_url(url), outage)
    _blind(outage, _now(now), url)
    heartbeat(HEARTBEAT)
    return states


def _now(now: datetime | None) -> datetime:
    return (now or timezone.now()).astimezone(UTC)


@dataclass(frozen=True)
class _Outcome:
    holds: bool
    shown: float | None


def _apply(rule_pk: int, samples: list[Sample], now: datetime) -> str:
    """Move one rule's state on a successful query (row-locked: concurrent runs queue here)."""
    try:
        with transaction.atomic():
            rule = PrometheusRule.objects.select_for_update().get(pk=rule_pk)
            if not rule.enabled or (rule.last_evaluated_at and rule.last_evaluated_at > now):
                return str(rule.state)  # disabled meanwhile, or a newer evaluation already applied
            hits = offending(samples, rule.comparison, rule.threshold)
            finite = [v for _, v in samples if not math.isnan(v)]
            shown = hits[0][1] if hits else (_extreme(finite, rule.comparison) if finite else None)
            rule.last_value = None if shown is None or math.isnan(shown) else shown
            rule.last_evaluated_at = now
            rule.last_error = ""
            if hits:
                if rule.pending_since is None:
                    rule.pending_since = now
                if now - rule.pending_since >= timedelta(seconds=rule.for_seconds):
                    # A recovery rule only gates recovery (incidents' pre-recovery facts): no signal.
                    if rule.state != RuleState.FIRING and rule.purpose == RulePurpose.ALERT:
                        signals_ingest([_firing(rule, hits)], received_at=now)
                    rule.state = RuleState.FIRING
                else:
                    rule.state = RuleState.PENDING
            else:
                if rule.purpose == RulePurpose.ALERT and (fired := _fired_group(rule)) is not None:
                    signals_ingest([_resolved(rule, now, shown, fired)], received_at=now)
                rule.state = RuleState.INACTIVE
                rule.pending_since = None
            rule.save(
                update_fields=[
                    "state",
                    "pending_since",
                    "last_value",
                    "last_evaluated_at",
                    "last_error",
                ]
            )
            return str(rule.state)
    except Exception as exc:
        # Recording the signal failed: the transition rolled back; the next run tries again.
        log.exception("Prometheus rule %s: could not record its state", rule_pk)
        return _apply_error(rule_pk, f"could not record the signal: {type(exc).__name__}: {exc}", now)


def _extreme(values: list[float], comparison: str) -> float:
    """The value closest to crossing: the largest for > and >=, the smallest for < and <=."""
    if comparison in (Comparison.LT, Comparison.LE):
        return min(values)
    if comparison in (Comparison.GT, Comparison.GE):
        return max(values)
    return values[0]


def _apply_error(rule_pk: int, message: str, now: datetime) -> str:
    with transaction.atomic():
        rule = PrometheusRule.objects.select_for_update().get(pk=rule_pk)
        if rule.last_evaluated_at and rule.last_evaluated_at > now:
            return str(rule.state)
        rule.state = RuleState.ERROR
        rule.last_error = _clean(message)[:300]
        rule.last_value = None
        rule.last_evaluated_at = now
        rule.save(update_fields=["state", "last_error", "last_value", "last_evaluated_at"])
        return str(rule.state)


def _fingerprint(rule: PrometheusRule) -> str:
    return f"rule:{rule.name}"


def _group_key(rule: PrometheusRule, labels: dict[str, str]) -> str:
    """The rule's own group, or `rule.group` with {label} placeholders filled from the offending
    series (`health:{job}` joins that service's health-check incident: one outage, one incident).
    A placeholder the series lacks falls back to the rule's own group."""
    if not rule.group:
        return f"prometheus:{rule.name}"
    try:
        return rule.group.format_map({_clean(k): _clean(v)[:100] for k, v in labels.items()})[:300]
    except (KeyError, ValueError, IndexError, AttributeError):
        return f"prometheus:{rule.name}"


def _fired_group(rule: PrometheusRule) -> str | None:
    """The group the current episode's firing signal went to, or None if the episode never fired
    (only a fired episode deserves a resolved signal, and it goes to the same incident)."""
    if rule.pending_since is None:
        return None
    return (
        Signal.objects.filter(
            source=Source.PROMETHEUS,
            fingerprint=_fingerprint(rule)[:200],
            starts_at=rule.pending_since,
            status=SignalStatus.FIRING,
        )
        .values_list("group_key", flat=True)
        .first()
    )


def _condition(rule: PrometheusRule) -> str:
    return f"{rule.comparison} {format_value(rule.threshold)}"


def _firing(rule: PrometheusRule, hits: list[Sample]) -> AlertInput:
    labels, value = hits[0]
    where = format_labels(labels)
    more = f" (+{len(hits) - 1} more series)" if len(hits) > 1 else ""
    title = f"Prometheus rule {rule.name}: {format_value(value)} {_condition(rule)}"
    title += f" on {where}{more}" if where else more
    series = "\n".join(
        f"- {format_labels(s) or '(no labels)'} = {format_value(v)}" for s, v in hits[:MAX_SERIES_SHOWN]
    )
    if len(hits) > MAX_SERIES_SHOWN:
        series += f"\n- … and {len(hits) - MAX_SERIES_SHOWN} more"
    held = f" for {rule.for_seconds} s" if rule.for_seconds else ""
    summary = f"`{rule.expr}` {_condition(rule)} held{held}.\nOffending series:\n{series}"
    assert rule.pending_since is not None
    return AlertInput(
        source=Source.PROMETHEUS,
        fingerprint=_fingerprint(rule),
        group_key=_group_key(rule, labels),
        status=SignalStatus.FIRING,
        starts_at=rule.pending_since,
        severity=rule.severity,
        title=_clean(title)[:200],
        summary=summary,
        labels={"rule": rule.name, **{_clean(k): _clean(v)[:200] for k, v in labels.items()}},
        annotations={
            "expr": rule.expr,
            "condition": _condition(rule),
            "value": format_value(value),
            "for_seconds": str(rule.for_seconds),
            "series": str(len(hits)),
        },
        component=_clean(labels.get("job", ""))[:80],
        incident_type=rule.incident_type.slug if rule.incident_type else "",
    )


def _resolved(rule: PrometheusRule, now: datetime, shown: float | None, group_key: str) -> AlertInput:
    value = f" (now {format_value(shown)})" if shown is not None else " (no data)"
    assert rule.pending_since is not None
    return AlertInput(
        source=Source.PROMETHEUS,
        fingerprint=_fingerprint(rule),
        group_key=group_key,
        status=SignalStatus.RESOLVED,
        starts_at=rule.pending_since,
        ends_at=now,
        severity=rule.severity,
        title=f"Prometheus rule {rule.name}: no longer {_condition(rule)}{value}"[:200],
        summary=f"`{rule.expr}` {_condition(rule)} no longer holds.",
        labels={"rule": rule.name},
        annotations={"expr": rule.expr, "condition": _condition(rule)},
    )


def _blind(outage: str | None, now: datetime, url: str) -> None:
    """Raise "monitoring blind" once per outage; resolve it, with the same start, once reachable."""
    with transaction.atomic():
        SignalGroup.objects.get_or_create(key=BLIND_GROUP)
        SignalGroup.objects.select_for_update().get(key=BLIND_GROUP)
        last = (
            Signal.objects.filter(source=Source.PROMETHEUS, fingerprint=BLIND_FINGERPRINT)
            .order_by("-id")
            .only("status", "starts_at")
            .first()
        )
        ongoing = last if last is not None and last.status == SignalStatus.FIRING else None
        where = _display_url(url)
        if outage is not None and ongoing is None:
            alert = AlertInput(
                source=Source.PROMETHEUS,
                fingerprint=BLIND_FINGERPRINT,
                group_key=BLIND_GROUP,
                status=SignalStatus.FIRING,
                starts_at=now,
                severity=BLIND_SEVERITY,
                title="Monitoring blind: Prometheus is unreachable",
                summary=(
                    f"The console cannot query Prometheus at {where}: {outage}\n"
                    "No Prometheus rule is evaluated until it answers again."
                ),
                labels={"prometheus": where},
                annotations={"error": outage[:300]},
                component=BLIND_COMPONENT,
            )
            signals_ingest([alert], received_at=now)
        elif outage is None and ongoing is not None:
            alert = AlertInput(
                source=Source.PROMETHEUS,
                fingerprint=BLIND_FINGERPRINT,
                group_key=BLIND_GROUP,
                status=SignalStatus.RESOLVED,
                starts_at=ongoing.starts_at,
                ends_at=now,
                severity=BLIND_SEVERITY,
                title="Monitoring restored: Prometheus answers again",
                summary=f"Prometheus at {where} answers again; rules are evaluated.",
                labels={"prometheus": where},
                component=BLIND_COMPONENT,
            )
            signals_ingest([alert], received_at=max(now, ongoing.starts_at))


def _display_url(url: str) -> str:
    """The URL without credentials (user:password@ never reaches a title or a log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# ---------------------------------------------------------------------------------------------
# Rules as data
# ---------------------------------------------------------------------------------------------

_FIELDS = {
    "name",
    "expr",
    "comparison",
    "threshold",
    "for_seconds",
    "severity",
    "enabled",
    "group",
    "incident_type",
    "purpose",
}


class RulesFileError(Exception):
    pass


@dataclass(frozen=True)
class RuleDefinition:
    name: str
    expr: str
    comparison: str
    threshold: float
    for_seconds: int
    severity: int
    enabled: bool
    group: str = ""
    incident_type: str = ""
    purpose: str = "alert"


def read_rules(path: Path = RULES_FILE) -> list[RuleDefinition]:
    """Parse and validate the rules file; any problem is a RulesFileError naming the rule."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RulesFileError(f"{path}: not valid YAML: {exc}") from exc
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RulesFileError(f"{path}: expected a top-level `rules:` list")
    rules: list[RuleDefinition] = []
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        rule = _definition(item, index)
        if rule.name in seen:
            raise RulesFileError(f"rule {rule.name!r} appears twice")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _definition(item: Any, index: int) -> RuleDefinition:
    where = f"rule #{index}"
    if not isinstance(item, dict):
        raise RulesFileError(f"{where}: expected a mapping")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise RulesFileError(f"{where}: `name` must be a non-empty string of at most 100 characters")
    where = f"rule {name!r}"
    unknown = set(item) - _FIELDS
    if unknown:
        raise RulesFileError(f"{where}: unknown keys {sorted(unknown)}")
    expr = item.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise RulesFileError(f"{where}: `expr` must be a PromQL string")
    comparison = str(item.get("comparison", Comparison.GT))
    if comparison not in Comparison.values:
        raise RulesFileError(f"{where}: `comparison` must be one of {Comparison.values}")
    threshold = item.get("threshold", 0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or math.isnan(threshold):
        raise RulesFileError(f"{where}: `threshold` must be a number")
    for_seconds = item.get("for_seconds", 0)
    if isinstance(for_seconds, bool) or not isinstance(for_seconds, int) or for_seconds < 0:
        raise RulesFileError(f"{where}: `for_seconds` must be a whole number ≥ 0")
    severity = item.get("severity", 3)
    if isinstance(severity, bool) or severity not in (1, 2, 3, 4):
        raise RulesFileError(f"{where}: `severity` must be 1, 2, 3 or 4")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RulesFileError(f"{where}: `enabled` must be true or false")
    group = item.get("group", "")
    if not isinstance(group, str) or len(group) > 100:
        raise RulesFileError(f"{where}: `group` must be a signal group key of at most 100 characters")
    incident_type = item.get("incident_type", "")
    if not isinstance(incident_type, str) or len(incident_type) > 40:
        raise RulesFileError(f"{where}: `incident_type` must be an incident type's slug")
    purpose = item.get("purpose", RulePurpose.ALERT)
    if purpose not in RulePurpose.values:
        raise RulesFileError(f"{where}: `purpose` must be one of {RulePurpose.values}")
    return RuleDefinition(
        name=name.strip(),
        expr=expr.strip(),
        comparison=comparison,
        threshold=float(threshold),
        for_seconds=for_seconds,
        severity=int(severity),
        enabled=enabled,
        group=group.strip(),
        incident_type=incident_type.strip(),
        purpose=purpose,
    )


@transaction.atomic
def load_rules(path: Path = RULES_FILE) -> dict[str, int]:
    """Create or update each rule by name (idempotent). The file owns a rule's definition (expr,
    comparison, threshold, for, severity, group, incident type); `enabled` applies only when the rule
    is created, so an operator's "disable this noisy rule" survives a reload. Rules not in the file
    are left alone. An incident type must be in the playbook (load it first)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    types = {t.slug: t for t in IncidentType.objects.all()}
    definitions = read_rules(path)
    for definition in definitions:
        if definition.incident_type and definition.incident_type not in types:
            raise RulesFileError(
                f"rule {definition.name!r}: unknown incident type {definition.incident_type!r} "
                "(load the playbook first: manage.py load_playbook)"
            )
    for definition in definitions:
        fields = {
            "expr": definition.expr,
            "comparison": definition.comparison,
            "threshold": definition.threshold,
            "for_seconds": definition.for_seconds,
            "severity": definition.severity,
            "group": definition.group,
            "incident_type": types.get(definition.incident_type),
            "purpose": definition.purpose,
        }
        existing = PrometheusRule.objects.select_for_update().filter(name=definition.name).first()
        if existing is None:
            PrometheusRule.objects.create(name=definition.name, enabled=definition.enabled, **fields)
            counts["created"] += 1
        elif any(getattr(existing, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(existing, key, value)
            existing.save(update_fields=list(fields))
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    return counts
