"""Prometheus rules: querying, judging, the pending/firing state machine, "monitoring blind", the
rules file, and (marked `xdist_group("prometheus")`) a real Prometheus scraping a local exporter that
serves CDB's metric names.

Unit tests answer through an httpx.MockTransport and pass an explicit `now` (an hour ago, so the
incidents they open are not "detected in the future"). The real-Prometheus tests run in real time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from console.models import Heartbeat
from detection import outbound, prometheus
from detection.models import PrometheusRule, RuleState, Signal
from detection.prometheus import QueryError, Unreachable, offending, query, rules_evaluate
from incidents.models import EventKind, Incident, TimelineEvent
from tests.standins.exporter import ExporterStandIn
from tests.standins.prometheus import PrometheusStandIn, render_config

pytestmark = pytest.mark.django_db

FAKE_URL = "http://prometheus.test:9090"


# ---------------------------------------------------------------------------------------------
# A fake Prometheus API for the unit tests
# ---------------------------------------------------------------------------------------------


def vector(*series: tuple[dict[str, str], Any]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [1795736573.797, value]} for labels, value in series],
        },
    }


def scalar(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "scalar", "result": [1795736573.797, value]}}


def error(error_type: str, message: str) -> dict[str, Any]:
    return {"status": "error", "errorType": error_type, "error": message}


Answer = tuple[int, Any]  # (HTTP status, JSON body or raw text)


class FakePrometheus:
    """Answers /api/v1/query per expression; `down` makes every request fail to connect."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer | Callable[[httpx.Request], httpx.Response]] = {}
        self.default: Answer = (200, vector())
        self.down = False
        self.queries: list[str] = []

    def answer(self, expr: str, body: Any, status: int = 200) -> None:
        self.answers[expr] = (status, body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        assert request.url.path == "/api/v1/query"
        expr = request.url.params["query"]
        self.queries.append(expr)
        answer = self.answers.get(expr, self.default)
        if callable(answer):
            return answer(request)
        status, body = answer
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    @property
    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


@pytest.fixture(autouse=True)
def allowed(settings: Any) -> None:
    """The made-up hosts these tests query, besides the default allow-list (detection/outbound.py)."""
    settings.DETECTION_ALLOWED_HOSTS = [*outbound.allowed_hosts(), "prometheus.test", "p"]


@pytest.fixture
def fake(settings: Any) -> FakePrometheus:
    settings.PROMETHEUS_URL = FAKE_URL
    return FakePrometheus()


@pytest.fixture
def t0() -> datetime:
    return timezone.now().replace(microsecond=0) - timedelta(hours=1)


def make_rule(name: str = "cb", expr: str = "circuit_breaker_active", **fields: Any) -> PrometheusRule:
    fields = {"comparison": ">", "threshold": 0, "for_seconds": 0, "severity": 2, **fields}
    return PrometheusRule.objects.create(name=name, expr=expr, **fields)


def evaluate(fake: FakePrometheus, now: datetime) -> dict[str, str]:
    with fake.client as client:
        return rules_evaluate(now, client=client)


def signals(fingerprint: str) -> list[Signal]:
    return list(Signal.objects.filter(source="prometheus", fingerprint=fingerprint).order_by("id"))


def timeline(incident: Incident) -> list[str]:
    return list(
        TimelineEvent.objects.filter(incident=incident, kind=EventKind.SIGNAL)
        .order_by("id")
        .values_list("message", flat=True)
    )


RISK = {"__name__": "circuit_breaker_active", "job": "cdb_risk", "instance": "cdb_risk"}


# ---------------------------------------------------------------------------------------------
# query()
# ---------------------------------------------------------------------------------------------


def test_query_returns_labels_and_values_for_vectors_and_scalars(fake):
    fake.answer("v", vector((RISK, "1"), ({"job": "cdb_execution"}, "NaN"), ({"job": "x"}, "+Inf")))
    fake.answer("s", scalar("0.25"))
    with fake.client as client:
        samples = query(FAKE_URL + "/", "v", 2.0, client=client)
        assert query(FAKE_URL, "s", client=client) == [({}, 0.25)]
    assert samples[0] == (RISK, 1.0)
    assert samples[1][0] == {"job": "cdb_execution"} and math.isnan(samples[1][1])
    assert samples[2][1] == math.inf


def test_query_sends_an_instant_get_with_a_server_side_timeout():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vector())

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert query("http://p:9090/prefix/", 'up{job=~"cdb_.*"}', 3, client=client) == []
    [request] = seen
    assert request.method == "GET"
    assert request.url.path == "/prefix/api/v1/query"
    assert dict(request.url.params) == {"query": 'up{job=~"cdb_.*"}', "timeout": "3"}


@pytest.mark.parametrize(
    ("status", "body", "raised", "text"),
    [
        (400, error("bad_data", "1:5: parse error: unclosed left parenthesis"), QueryError, "parse error"),
        (422, error("execution", "many-to-many matching not allowed"), QueryError, "many-to-many"),
        (503, error("timeout", "query timed out in expression evaluation"), QueryError, "timeout"),
        (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}, QueryError, "range"),
        (200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}, QueryError, "str"),
        (200, vector(({"job": "a"}, "one")), QueryError, "value 'one'"),
        (200, vector(({"job": "a"}, 1)), QueryError, "bad answer"),
        (200, {"status": "success"}, QueryError, "no data"),
        (503, error("unavailable", "Service Unavailable"), Unreachable, "unavailable"),
        (500, error("internal", "storage is broken"), Unreachable, "internal"),
        (502, "<html>Bad Gateway</html>", Unreachable, "HTTP 502"),
        (504, "", Unreachable, "HTTP 504"),
        (200, "<html>Grafana</html>", Unreachable, "not Prometheus's API"),
        (404, "404 page not found", Unreachable, "not Prometheus's API"),
        (200, [1, 2], Unreachable, "not Prometheus's API"),
    ],
)
def test_query_tells_a_bad_query_from_an_unreachable_prometheus(fake, status, body, raised, text):
    fake.answer("q", body, status)
    with fake.client as client, pytest.raises(raised) as info:
        query(FAKE_URL, "q", client=client)
    assert text in str(info.value)


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")],
)
def test_query_transport_failures_are_unreachable(exc):
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with httpx.Client(transport=httpx.MockTransport(handler)) as client, pytest.raises(Unreachable):
        query(FAKE_URL, "up", client=client)


# ---------------------------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comparison", "threshold", "values", "held"),
    [
        (">", 0, [0, 1, 2], [2, 1]),
        (">", 1, [1], []),
        (">=", 1, [1, 0.5], [1]),
        ("<", 1, [1, 0, 0.5], [0, 0.5]),
        ("<=", 0.5, [1, 0.5], [0.5]),
        ("==", 0, [0, 1], [0]),
        ("!=", 0, [0, 1], [1]),
        (">", 0.05, [math.inf], [math.inf]),
        # NaN (0/0: no data) never holds, not even for != (where Python's NaN != x is true).
        (">", 0.05, [math.nan], []),
        ("<", 1, [math.nan], []),
        ("!=", 0, [math.nan], []),
        (">", 0, [], []),
    ],
)
def test_a_rule_holds_when_any_series_compares_true(comparison, threshold, values, held):
    samples = [({"i": str(i)}, v) for i, v in enumerate(values)]
    assert [v for _, v in offending(samples, comparison, threshold)] == held


# ---------------------------------------------------------------------------------------------
# The state machine
# ---------------------------------------------------------------------------------------------


def test_pending_then_firing_after_for_seconds_then_resolved(fake, t0):
    rule = make_rule("circuit-breaker-active", for_seconds=60, severity=2)
    fake.answer(rule.expr, vector((RISK, "1")))

    assert evaluate(fake, t0) == {"circuit-breaker-active": "pending"}
    assert evaluate(fake, t0 + timedelta(seconds=59)) == {"circuit-breaker-active": "pending"}
    assert not Signal.objects.exists() and not Incident.objects.exists()
    rule.refresh_from_db()
    assert (rule.pending_since, rule.last_value, rule.last_error) == (t0, 1.0, "")

    assert evaluate(fake, t0 + timedelta(seconds=60)) == {"circuit-breaker-active": "firing"}
    [fired] = signals("rule:circuit-breaker-active")
    assert (fired.status, fired.starts_at, fired.severity) == ("firing", t0, 2)
    assert fired.group_key == "prometheus:circuit-breaker-active"
    assert fired.title == (
        "Prometheus rule circuit-breaker-active: 1 > 0 on "
        'circuit_breaker_active{instance="cdb_risk", job="cdb_risk"}'
    )
    assert fired.labels["job"] == "cdb_risk" and fired.annotations["expr"] == "circuit_breaker_active"
    incident = fired.incident
    assert incident is not None and incident.severity == 2 and incident.title == fired.title
    assert incident.affected_components == ["cdb_risk"] and incident.detected_at == t0

    # Still holding: nothing new.
    assert evaluate(fake, t0 + timedelta(seconds=75)) == {"circuit-breaker-active": "firing"}
    assert len(signals("rule:circuit-breaker-active")) == 1

    fake.answer(rule.expr, vector((RISK, "0")))
    assert evaluate(fake, t0 + timedelta(seconds=90)) == {"circuit-breaker-active": "inactive"}
    _, resolved = signals("rule:circuit-breaker-active")
    assert (resolved.status, resolved.starts_at, resolved.incident) == ("resolved", t0, incident)
    assert resolved.ends_at == t0 + timedelta(seconds=90)
    assert resolved.title == "Prometheus rule circuit-breaker-active: no longer > 0 (now 0)"
    assert timeline(incident) == [
        f"Firing (prometheus: {fired.title})",
        f"Resolved (prometheus: {resolved.title})",
    ]
    rule.refresh_from_db()
    assert (rule.state, rule.pending_since, rule.last_value) == (RuleState.INACTIVE, None, 0.0)
    assert Incident.objects.count() == 1


def test_for_zero_fires_on_the_first_evaluation_and_a_repeat_changes_nothing(fake, t0):
    make_rule(severity=1)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    assert evaluate(fake, t0) == {"cb": "firing"}
    assert evaluate(fake, t0) == {"cb": "firing"}  # the same run delivered twice (at-least-once)
    [fired] = signals("rule:cb")
    assert fired.incident is not None and fired.incident.severity == 1


def test_a_rule_that_stops_holding_while_pending_sends_nothing(fake, t0):
    make_rule(for_seconds=300)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    assert evaluate(fake, t0) == {"cb": "pending"}
    fake.answer("circuit_breaker_active", vector((RISK, "0")))
    assert evaluate(fake, t0 + timedelta(seconds=30)) == {"cb": "inactive"}
    assert not Signal.objects.exists()
    # Holding again starts a new wait, from the new time.
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    evaluate(fake, t0 + timedelta(seconds=45))
    assert PrometheusRule.objects.get().pending_since == t0 + timedelta(seconds=45)


def test_the_clock_is_now_by_default(fake, t0):
    make_rule(for_seconds=60)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    with time_machine.travel(t0, tick=False) as traveller, fake.client as client:
        assert rules_evaluate(client=client) == {"cb": "pending"}
        traveller.shift(timedelta(seconds=60))
        assert rules_evaluate(client=client) == {"cb": "firing"}
    [fired] = signals("rule:cb")
    assert fired.starts_at == t0 and fired.received_at == t0 + timedelta(seconds=60)


def test_title_names_the_worst_series_and_counts_the_rest(fake, t0):
    make_rule("down", 'up{job=~"cdb_.*"}', comparison="<", threshold=1, severity=1)
    fake.answer(
        'up{job=~"cdb_.*"}',
        vector(
            ({"__name__": "up", "job": "cdb_risk"}, "1"),
            ({"__name__": "up", "job": "cdb_ws\nstate=inactive"}, "0"),
            ({"__name__": "up", "job": "cdb_execution"}, "0"),
        ),
    )
    evaluate(fake, t0)
    [fired] = signals("rule:down")
    assert fired.title == 'Prometheus rule down: 0 < 1 on up{job="cdb_ws state=inactive"} (+1 more series)'
    assert "cdb_execution" in fired.summary and "cdb_risk" not in fired.summary
    assert PrometheusRule.objects.get().last_value == 0.0


def test_no_data_and_nan_do_not_hold(fake, t0):
    make_rule("ratio", "a / b", threshold=0.05)
    make_rule("absent")
    fake.answer("a / b", vector(({"job": "cdb_execution"}, "NaN")))
    assert evaluate(fake, t0) == {"absent": "inactive", "ratio": "inactive"}
    assert set(PrometheusRule.objects.values_list("last_value", flat=True)) == {None}
    fake.answer("a / b", vector(({"job": "cdb_execution"}, "+Inf")))  # rejections, nothing received
    assert evaluate(fake, t0 + timedelta(seconds=1))["ratio"] == "firing"


def test_a_query_error_is_the_rules_state_and_never_fires(fake, t0):
    make_rule("bad", "sum(", severity=1)
    make_rule("good")
    fake.answer("sum(", error("bad_data", "1:5: parse error: unclosed left parenthesis"), 400)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    assert evaluate(fake, t0) == {"bad": "error", "good": "firing"}
    bad = PrometheusRule.objects.get(name="bad")
    assert bad.last_error == "bad_data: 1:5: parse error: unclosed left parenthesis"
    assert (bad.last_value, bad.last_evaluated_at) == (None, t0)
    assert not signals("rule:bad") and not signals("prometheus:blind")
    assert Heartbeat.objects.filter(name="prometheus").exists()


def test_an_error_while_firing_keeps_the_episode(fake, t0):
    make_rule()
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    evaluate(fake, t0)
    fake.answer("circuit_breaker_active", error("timeout", "query timed out"), 503)
    assert evaluate(fake, t0 + timedelta(seconds=15)) == {"cb": "error"}
    rule = PrometheusRule.objects.get()
    assert (rule.pending_since, rule.last_error) == (t0, "timeout: query timed out")
    # Holding again: the same episode, so no second firing signal; then it resolves that episode.
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    assert evaluate(fake, t0 + timedelta(seconds=30)) == {"cb": "firing"}
    assert [s.status for s in signals("rule:cb")] == ["firing"]
    fake.answer("circuit_breaker_active", vector((RISK, "0")))
    evaluate(fake, t0 + timedelta(seconds=45))
    assert [(s.status, s.starts_at) for s in signals("rule:cb")] == [("firing", t0), ("resolved", t0)]


def test_an_error_while_pending_then_no_longer_holding_sends_nothing(fake, t0):
    make_rule(for_seconds=600)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    evaluate(fake, t0)
    fake.answer("circuit_breaker_active", error("execution", "boom"), 422)
    evaluate(fake, t0 + timedelta(seconds=15))
    fake.answer("circuit_breaker_active", vector((RISK, "0")))
    assert evaluate(fake, t0 + timedelta(seconds=30)) == {"cb": "inactive"}
    assert not Signal.objects.exists()


def test_disabled_rules_are_not_evaluated(fake, t0):
    make_rule(enabled=False)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    assert evaluate(fake, t0) == {}
    assert "circuit_breaker_active" not in fake.queries
    assert PrometheusRule.objects.get().state == RuleState.INACTIVE


def test_an_older_evaluation_never_overwrites_a_newer_one(fake, t0):
    make_rule()
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    evaluate(fake, t0 + timedelta(seconds=30))
    fake.answer("circuit_breaker_active", vector((RISK, "0")))
    assert evaluate(fake, t0) == {"cb": "firing"}  # a run that queried earlier, applied later
    assert [s.status for s in signals("rule:cb")] == ["firing"]


def test_empty_url_disables_everything(settings, t0):
    settings.PROMETHEUS_URL = ""
    make_rule()
    assert rules_evaluate(t0) == {}
    assert not Heartbeat.objects.exists() and PrometheusRule.objects.get().last_evaluated_at is None


# ---------------------------------------------------------------------------------------------
# Monitoring blind
# ---------------------------------------------------------------------------------------------


def test_unreachable_prometheus_is_one_blind_signal_per_outage_and_resolves(fake, t0, settings):
    settings.PROMETHEUS_URL = "http://console:s3cret@prometheus.test:9090"
    make_rule("cb", severity=1)
    make_rule("other", "orders_blocked_total", severity=3)
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    evaluate(fake, t0)

    fake.down = True
    fake.queries.clear()
    for seconds in (15, 30, 45):
        assert evaluate(fake, t0 + timedelta(seconds=seconds)) == {"cb": "firing", "other": "inactive"}
    assert fake.queries == []  # the first refusal stops the run: no rule is judged blind
    [blind] = signals("prometheus:blind")
    assert (blind.status, blind.severity, blind.starts_at) == ("firing", 3, t0 + timedelta(seconds=15))
    assert blind.title == "Monitoring blind: Prometheus is unreachable"
    assert "Connection refused" in blind.summary and "s3cret" not in blind.summary + json.dumps(blind.labels)
    incident = blind.incident
    assert (
        incident is not None and incident.severity == 3 and incident.affected_components == ["cdb_prometheus"]
    )
    assert [s.status for s in signals("rule:cb")] == ["firing"]  # nothing known: nothing resolved
    assert Heartbeat.objects.get(name="prometheus").last_seen is not None

    fake.down = False
    fake.answer("circuit_breaker_active", vector((RISK, "0")))
    evaluate(fake, t0 + timedelta(seconds=60))
    evaluate(fake, t0 + timedelta(seconds=75))
    _, restored = signals("prometheus:blind")
    assert (restored.status, restored.starts_at) == ("resolved", blind.starts_at)
    assert restored.ends_at == t0 + timedelta(seconds=60) and restored.incident == incident
    assert timeline(incident)[-1] == "Resolved (prometheus: Monitoring restored: Prometheus answers again)"
    assert [s.status for s in signals("rule:cb")] == ["firing", "resolved"]

    # A second outage is a second blind signal (joining the incident while it is open).
    fake.down = True
    evaluate(fake, t0 + timedelta(seconds=90))
    third = signals("prometheus:blind")[-1]
    assert (third.status, third.starts_at, third.incident) == ("firing", t0 + timedelta(seconds=90), incident)
    assert Incident.objects.filter(title__startswith="Monitoring blind").count() == 1


@pytest.mark.parametrize(
    "answer",
    [(502, "<html>Bad Gateway</html>"), (503, error("unavailable", "not ready")), (200, "<html/>")],
)
def test_5xx_and_non_api_answers_are_blind_too(fake, t0, answer):
    make_rule()
    fake.default = answer
    assert evaluate(fake, t0) == {"cb": "inactive"}
    [blind] = signals("prometheus:blind")
    assert blind.status == "firing"


def test_blindness_is_noticed_without_any_rule(fake, t0):
    fake.down = True
    assert evaluate(fake, t0) == {}
    assert [s.status for s in signals("prometheus:blind")] == ["firing"]
    fake.down = False
    evaluate(fake, t0 + timedelta(seconds=15))
    assert fake.queries == ["vector(1)"]
    assert [s.status for s in signals("prometheus:blind")] == ["firing", "resolved"]


# ---------------------------------------------------------------------------------------------
# Rules as data
# ---------------------------------------------------------------------------------------------


def test_default_rules_use_cdbs_real_metric_names():
    rules = {r.name: r for r in prometheus.read_rules()}
    exprs = " ".join(r.expr for r in rules.values())
    for metric in (
        "risk_kill_switch_active",
        "circuit_breaker_active",
        "orders_blocked_total",
        "execution_orders_rejected_total",
        "execution_orders_received_total",
        "signal_errors_total",
        'up{job=~"cdb_',
    ):
        assert metric in exprs
    assert "cdb_kill_switch_active" not in exprs and "cdb_errors_total" not in exprs
    assert rules["kill-switch-active"].severity == 1
    assert rules["circuit-breaker-active"].severity == 2


def test_load_prometheus_rules_is_idempotent_and_keeps_an_operators_disable(capsys):
    call_command("load_prometheus_rules")
    assert "10 created" in capsys.readouterr().out
    names = set(PrometheusRule.objects.values_list("name", flat=True))
    assert len(names) == 10 and "kill-switch-active" in names
    PrometheusRule.objects.filter(name="orders-blocked-burst").update(enabled=False, threshold=99)
    custom = make_rule("my-own-rule")
    call_command("load_prometheus_rules")
    assert "1 updated, 9 unchanged" in capsys.readouterr().out
    blocked = PrometheusRule.objects.get(name="orders-blocked-burst")
    assert (blocked.enabled, blocked.threshold) == (False, 10)
    assert PrometheusRule.objects.filter(pk=custom.pk).exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {}", "top-level `rules:` list"),
        ("rules: [{name: a}]", "`expr`"),
        ("rules: [{name: a, expr: up, comparison: '=>'}]", "`comparison`"),
        ("rules: [{name: a, expr: up, severity: 5}]", "`severity`"),
        ("rules: [{name: a, expr: up, for_seconds: -1}]", "`for_seconds`"),
        ("rules: [{name: a, expr: up, threshold: high}]", "`threshold`"),
        ("rules: [{name: a, expr: up, labels: {}}]", "unknown keys"),
        ("rules: [{name: a, expr: up}, {name: a, expr: up}]", "appears twice"),
        ("rules: [", "not valid YAML"),
    ],
)
def test_load_prometheus_rules_refuses_a_bad_file(tmp_path, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(CommandError) as info:
        call_command("load_prometheus_rules", file=path)
    assert message in str(info.value)
    assert not PrometheusRule.objects.exists()


# ---------------------------------------------------------------------------------------------
# A real Prometheus scraping a local exporter with CDB's metric names
# ---------------------------------------------------------------------------------------------


@dataclass
class Stack:
    risk: ExporterStandIn
    execution: ExporterStandIn
    signal: ExporterStandIn
    prometheus: PrometheusStandIn


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    risk, execution, signal = ExporterStandIn.risk(), ExporterStandIn.execution(), ExporterStandIn.signal()
    exporters = [risk, execution, signal]
    for exporter in exporters:
        exporter.start()
    prom = PrometheusStandIn({e.job: e.target for e in exporters}, tmp_path_factory.mktemp("prometheus"))
    try:
        with prom:
            yield Stack(risk, execution, signal, prom)
    finally:
        for exporter in exporters:
            exporter.stop()


@pytest.fixture
def real(stack: Stack, settings: Any) -> Stack:
    settings.PROMETHEUS_URL = stack.prometheus.url
    stack.risk.set("risk_kill_switch_active", 0)
    stack.risk.set("circuit_breaker_active", 0)
    stack.prometheus.wait_for(
        "max(risk_kill_switch_active) + max(circuit_breaker_active)", lambda s: bool(s) and s[0][1] == 0
    )
    return stack


def value_is(expected: float) -> Callable[[list[tuple[dict[str, str], float]]], bool]:
    return lambda samples: bool(samples) and all(v == expected for _, v in samples)


@pytest.mark.xdist_group("prometheus")
def test_real_prometheus_rule_crossing_its_threshold_opens_an_incident(real):
    call_command("load_prometheus_rules", verbosity=0)

    # Every default expression is valid PromQL and quiet on a healthy stack (no errors, no blind).
    states = rules_evaluate()
    assert set(states.values()) == {"inactive"}, PrometheusRule.objects.values("name", "last_error")
    assert not Signal.objects.exists()

    real.risk.set("circuit_breaker_active", 1)
    real.risk.inc("orders_blocked_total", 25)
    real.prometheus.wait_for("circuit_breaker_active", value_is(1))
    real.prometheus.wait_for("increase(orders_blocked_total[5m])", lambda s: bool(s) and s[0][1] > 10)
    states = rules_evaluate()
    assert states["circuit-breaker-active"] == "firing" and states["orders-blocked-burst"] == "firing"
    assert states["kill-switch-active"] == "inactive"

    [fired] = signals("rule:circuit-breaker-active")
    incident = fired.incident
    assert incident is not None and incident.is_open and incident.severity == 2
    assert incident.title.startswith(
        "Prometheus rule circuit-breaker-active: 1 > 0 on circuit_breaker_active{"
    )
    assert 'job="cdb_risk"' in incident.title and incident.affected_components == ["cdb_risk"]
    [blocked] = signals("rule:orders-blocked-burst")
    assert blocked.severity == 3 and blocked.incident is not None and blocked.incident != incident
    assert '> 10 on {instance="cdb_risk", job="cdb_risk"}' in blocked.title

    real.risk.set("circuit_breaker_active", 0)
    real.prometheus.wait_for("circuit_breaker_active", value_is(0))
    assert rules_evaluate()["circuit-breaker-active"] == "inactive"
    _, resolved = signals("rule:circuit-breaker-active")
    assert (resolved.status, resolved.starts_at, resolved.incident) == ("resolved", fired.starts_at, incident)
    assert timeline(incident)[-1].startswith("Resolved (prometheus: Prometheus rule circuit-breaker-active")
    assert Heartbeat.objects.filter(name="prometheus").exists()


@pytest.mark.xdist_group("prometheus")
def test_real_kill_switch_opens_a_sev1_incident(real):
    call_command("load_prometheus_rules", verbosity=0)
    real.risk.set("risk_kill_switch_active", 1)
    real.prometheus.wait_for("risk_kill_switch_active", value_is(1))
    assert rules_evaluate()["kill-switch-active"] == "firing"
    [fired] = signals("rule:kill-switch-active")
    assert fired.incident is not None and fired.incident.severity == 1


@pytest.mark.xdist_group("prometheus")
def test_real_prometheus_accepts_the_server_side_timeout(real, settings):
    settings.PROMETHEUS_TIMEOUT = 2.5
    make_rule("ok", "circuit_breaker_active")
    assert rules_evaluate() == {"ok": "inactive"}
    assert query(real.prometheus.url, "vector(1)", 0.5) == [({}, 1.0)]


@pytest.mark.xdist_group("prometheus")
def test_real_prometheus_bad_expression_is_an_error_state(real):
    make_rule("bad", "sum(circuit_breaker_active", severity=1)
    make_rule("range", "circuit_breaker_active[1m]")
    make_rule("ok", "circuit_breaker_active")
    assert rules_evaluate() == {"bad": "error", "ok": "inactive", "range": "error"}
    bad = PrometheusRule.objects.get(name="bad")
    assert bad.last_error.startswith("bad_data: ") and "parse error" in bad.last_error
    assert "range vector" in PrometheusRule.objects.get(name="range").last_error
    assert not Signal.objects.exists()


@pytest.mark.xdist_group("prometheus")
def test_real_service_down_fires_with_its_job_and_resolves(real):
    call_command("load_prometheus_rules", verbosity=0)
    PrometheusRule.objects.filter(name="service-down").update(for_seconds=0)
    real.signal.stop()
    try:
        real.prometheus.wait_for('up{job="cdb_signal"}', value_is(0))
        assert rules_evaluate()["service-down"] == "firing"
        assert rules_evaluate()["core-service-down"] == "inactive"
    finally:
        real.signal.start()
    [fired] = signals("rule:service-down")
    assert 'job="cdb_signal"' in fired.title and fired.severity == 3
    real.prometheus.wait_for('up{job="cdb_signal"}', value_is(1))
    assert rules_evaluate()["service-down"] == "inactive"
    assert [s.status for s in signals("rule:service-down")] == ["firing", "resolved"]


@pytest.mark.xdist_group("prometheus")
def test_real_prometheus_stopped_is_monitoring_blind(stack, settings, tmp_path):
    prom = PrometheusStandIn({"cdb_risk": stack.risk.target}, tmp_path)
    with prom.start(wait_for_scrape=False):  # reachability is all this test needs
        settings.PROMETHEUS_URL = prom.url
        make_rule("cb")
        assert rules_evaluate() == {"cb": "inactive"}
        prom.stop()
        assert rules_evaluate() == {"cb": "inactive"}
        assert rules_evaluate() == {"cb": "inactive"}
        [blind] = signals("prometheus:blind")
        incident = blind.incident
        assert incident is not None and incident.severity == 3 and incident.is_open
        assert incident.title == "Monitoring blind: Prometheus is unreachable"
        assert "ConnectError" in blind.summary

        prom.start(wait_for_scrape=False)  # same port, same storage: Prometheus is back
        rules_evaluate()
    _, restored = signals("prometheus:blind")
    assert (restored.status, restored.starts_at) == ("resolved", blind.starts_at)
    assert timeline(incident) == [
        "Firing (prometheus: Monitoring blind: Prometheus is unreachable)",
        "Resolved (prometheus: Monitoring restored: Prometheus answers again)",
    ]


# ---------------------------------------------------------------------------------------------
# The stand-ins themselves
# ---------------------------------------------------------------------------------------------


def test_prometheus_config_scrapes_each_job_every_second():
    config = json.loads(render_config({"cdb_risk": "127.0.0.1:1234"}))
    [job] = config["scrape_configs"]
    assert job["job_name"] == "cdb_risk" and job["scrape_interval"] == "1s"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:1234"], "labels": {"instance": "cdb_risk"}}]
    assert set(config) == {"global", "scrape_configs"}  # no rule files, alerting or remote storage


def test_missing_prometheus_binary_fails_naming_the_make_target(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PROMETHEUS_BINARY", "no-such-prometheus")
    monkeypatch.setattr("tests.standins.prometheus.os.access", lambda *a: False)
    with pytest.raises(pytest.fail.Exception, match="make prometheus"):
        PrometheusStandIn({}, tmp_path).start()


@pytest.mark.django_db
def test_the_kill_switch_rule_joins_the_incident_a_console_halt_was_linked_to(ks_files, responder):
    """A halt from an incident must not spawn a second SEV-1 from the risk_kill_switch_active rule."""
    from detection.prometheus import load_rules
    from detection.services import AlertInput, signals_ingest
    from incidents.models import Incident
    from killswitch import services as ks
    from tests.incidents.factories import declare

    load_rules()
    rule = PrometheusRule.objects.get(name="kill-switch-active")
    assert rule.group == "killswitch:production"
    incident = declare(responder, severity=1)
    ks.killswitch_activate(
        target="production", actor=responder, reason="manual", message="x", incident=incident
    )
    signals_ingest(
        [
            AlertInput(
                source="prometheus",
                fingerprint="rule:kill-switch-active",
                status="firing",
                starts_at=timezone.now(),
                severity=1,
                title="kill switch active",
                group_key=rule.group,
            )
        ]
    )
    assert Incident.objects.count() == 1
    assert incident.events.filter(kind="signal").count() == 1


def test_a_core_service_outage_is_one_incident_whether_health_or_prometheus_notices_first(fake, t0):
    """core-service-down groups by `health:{job}`: it joins the service's health-check incident, and
    its resolution goes there too; another job's outage opens that service's own incident."""
    from detection.health import Transition, transition_alert
    from detection.models import MonitoredService
    from detection.prometheus import load_rules
    from detection.services import signals_ingest

    load_rules()
    rule = PrometheusRule.objects.get(name="core-service-down")
    assert rule.group == "health:{job}"
    PrometheusRule.objects.exclude(pk=rule.pk).update(enabled=False)
    risk = MonitoredService.objects.create(name="cdb_risk", url="http://cdb_risk:8002/health", core=True)
    signals_ingest([transition_alert(risk, "up", Transition("down", t0, 3), "connection refused")])
    [incident] = Incident.objects.all()

    up = 'up{job=~"cdb_(risk|execution|ws)"}'
    fake.answer(up, vector(({"__name__": "up", "job": "cdb_risk", "instance": "cdb_risk:8002"}, "0")))
    evaluate(fake, t0)
    assert evaluate(fake, t0 + timedelta(seconds=60)) == {"core-service-down": "firing"}
    [fired] = signals("rule:core-service-down")
    assert fired.group_key == "health:cdb_risk" and fired.incident == incident
    assert Incident.objects.count() == 1

    fake.answer(up, vector(({"__name__": "up", "job": "cdb_risk", "instance": "cdb_risk:8002"}, "1")))
    evaluate(fake, t0 + timedelta(seconds=90))
    _, resolved = signals("rule:core-service-down")
    assert resolved.group_key == "health:cdb_risk" and resolved.incident == incident

    fake.answer(up, vector(({"__name__": "up", "job": "cdb_ws", "instance": "cdb_ws:8000"}, "0")))
    evaluate(fake, t0 + timedelta(seconds=120))
    evaluate(fake, t0 + timedelta(seconds=180))
    ws = signals("rule:core-service-down")[-1]
    assert ws.group_key == "health:cdb_ws" and ws.incident not in (None, incident)


def test_a_group_placeholder_the_series_lacks_falls_back_to_the_rules_own_group(fake, t0):
    make_rule("cb", group="health:{service}")
    fake.answer("circuit_breaker_active", vector((RISK, "1")))
    evaluate(fake, t0)
    [fired] = signals("rule:cb")
    assert fired.group_key == "prometheus:cb" and fired.incident is not None
