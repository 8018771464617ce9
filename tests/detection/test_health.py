"""Health polling: judging CDB's bodies, damping, incidents from transitions, retention, the stack as
data, and the whole loop against local stand-ins of CDB's services (tests/standins/health.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from config.celery import app
from console.models import Heartbeat
from detection import health, tasks
from detection.health import CheckResult, health_record, judge, judge_reply, poll_all, prune_results
from detection.models import (
    CheckKind,
    Health,
    HealthResult,
    Judge,
    MonitoredService,
    Signal,
    SignalStatus,
)
from incidents.models import EventKind, Incident, Status, TimelineEvent
from tests.standins.health import KINDS, HealthStandIn, Mode, answer_for

DOWN_AFTER = 3
UP_AFTER = 2
CORE = {"risk", "execution", "market", "ws"}


@pytest.fixture(autouse=True)
def damping(settings: Any) -> None:
    """The documented defaults, pinned: down after 3 unhealthy checks in a row, up after 2 healthy."""
    settings.HEALTH_DOWN_AFTER = DOWN_AFTER
    settings.HEALTH_UP_AFTER = UP_AFTER
    settings.HEALTH_RESULTS_KEEP = 500


def make_service(name: str, url: str = "http://127.0.0.1:9/health", **fields: Any) -> MonitoredService:
    fields.setdefault("timeout", 1.0)
    fields.setdefault("judge", Judge.WS if name == "cdb_ws" else Judge.STATUS)
    return MonitoredService.objects.create(name=name, url=url, **fields)


def service_for(standin: HealthStandIn, **fields: Any) -> MonitoredService:
    kind = standin.kind.name.removeprefix("cdb_")
    fields.setdefault("core", kind in CORE)
    return make_service(standin.kind.name, standin.url, **fields)


class Checks:
    """Feeds synthetic check results to `health_record`, one second apart, in the recent past."""

    def __init__(self) -> None:
        self.clock = timezone.now() - timedelta(hours=1)
        self.times: list[datetime] = []

    def __call__(self, service: MonitoredService, *states: str, detail: str = "") -> str | None:
        state: str | None = None
        for observed in states:
            self.clock += timedelta(seconds=1)
            self.times.append(self.clock)
            result = CheckResult(observed, detail or f"observed {observed}", 12.5, self.clock)
            state = health_record(service_id=service.pk, result=result)
        return state


@pytest.fixture
def checks() -> Checks:
    return Checks()


def timeline(incident: Incident) -> list[str]:
    return [e.message for e in TimelineEvent.objects.filter(incident=incident).order_by("id")]


# --- Judging (pure) ---

# What each kind's answer in each mode is judged, from the bodies of docs/cdb/contracts.md, section 2.
UNHEALTHY_200 = {"market": Health.DEGRADED, "ws": Health.DEGRADED}  # the others: down
UNHEALTHY_503 = {"market": Health.DEGRADED}  # ws 503 with "healthy": down (non-200)


def expected(kind: str, mode: Mode) -> str:
    if mode in (Mode.HEALTHY, Mode.SLOW):
        return Health.UP
    if mode == Mode.ERROR:
        return UNHEALTHY_200.get(kind, Health.DOWN)
    if mode == Mode.UNAVAILABLE:
        return UNHEALTHY_503.get(kind, Health.DOWN)
    return Health.DOWN


def judge_of(kind: str) -> MonitoredService:
    return MonitoredService(name=f"cdb_{kind}", judge=Judge.WS if kind == "ws" else Judge.STATUS)


@pytest.mark.parametrize("mode", [Mode.HEALTHY, Mode.ERROR, Mode.UNAVAILABLE, Mode.GARBAGE])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_judged_by_its_body(kind: str, mode: Mode) -> None:
    answer = answer_for(KINDS[kind], mode)
    state, detail, _ = judge(judge_of(kind), answer.status, answer.body)
    assert state == expected(kind, mode), detail
    assert detail and len(detail) <= 200


@pytest.mark.parametrize(
    ("which", "status", "body", "state", "words"),
    [
        ("status", 200, b'{"status":"ok","service":"risk_manager"}', Health.UP, "status ok"),
        ("status", 200, b'{"service":"risk_manager","status":"error","version":"0.1.0"}', "down", "error"),
        ("status", 503, b'{"status":"degraded","detail":["BTCUSDT stale"]}', "degraded", "BTCUSDT stale"),
        ("status", 200, b'{"status":"degraded"}', Health.DEGRADED, "HTTP 200"),
        ("status", 503, b'{"status":"stopped","service":"paper_trading_runner"}', "down", "stopped"),
        ("status", 503, b'{"status":"error","last_error":"consumer crashed"}', "down", "consumer crashed"),
        ("status", 500, b'{"status":"ok"}', Health.DOWN, "HTTP 500 although status ok"),
        ("status", 200, b'{"status":"OK"}', Health.DOWN, "status OK"),  # only exact "ok"/"healthy"
        ("status", 200, b'{"status":["ok"]}', Health.DOWN, '["ok"]'),
        ("status", 200, b'{"service":"signal_engine"}', Health.DOWN, "no status"),
        ("status", 200, b"[]", Health.DOWN, "not a JSON object"),
        ("status", 200, b"", Health.DOWN, "not JSON: (empty)"),
        ("status", 200, b"OK", Health.DOWN, "not JSON: OK"),
        ("status", 200, b"\xff\xfe\x00garbage", Health.DOWN, "not JSON"),
        ("status", 200, b"[" * 100_000, Health.DOWN, "not JSON"),
        ("status", 502, b"<html>Bad Gateway</html>", Health.DOWN, "HTTP 502, body is not JSON"),
        ("status", 200, b"Prometheus Server is Healthy.\n", Health.UP, "Healthy"),
        ("status", 503, b"Prometheus Server is Healthy.\n", Health.DOWN, "HTTP 503"),
        ("status", 200, b'{"commit":"x","database":"ok","version":"11"}', Health.UP, "database ok"),
        ("status", 503, b'{"database":"failing"}', Health.DOWN, "database failing"),
        ("ws", 200, b'{"status":"healthy","ws_connected":true,"redis_connected":true}', "up", "healthy"),
        ("ws", 200, b'{"status":"healthy","ws_connected":false,"redis_connected":true}', "degraded", "ws_"),
        ("ws", 200, b'{"status":"healthy","ws_connected":true,"redis_connected":false}', "degraded", "redis"),
        ("ws", 200, b'{"status":"healthy","ws_connected":true}', Health.DEGRADED, "redis_connected missing"),
        ("ws", 200, b'{"status":"healthy","ws_connected":"true","redis_connected":true}', "degraded", "ws_"),
        ("ws", 200, b'{"status":"error","ws_connected":true,"redis_connected":true}', Health.DOWN, "error"),
        ("ws", 503, b'{"status":"healthy","ws_connected":true,"redis_connected":true}', Health.DOWN, "503"),
    ],
)
def test_the_body_decides_not_http_200_alone(
    which: str, status: int, body: bytes, state: str, words: str
) -> None:
    service = MonitoredService(name="cdb_x", judge=which)
    got, detail, reply = judge(service, status, body)  # reply: the service's own words, apart
    assert (got, words in f"{detail}: {reply}") == (state, True), detail


@pytest.mark.parametrize(
    ("protocol", "reply", "state"),
    [
        ("postgres", b"S", Health.UP),
        ("postgres", b"N", Health.UP),
        ("postgres", b"", Health.DOWN),
        ("postgres", b"HTTP/1.0 400 Bad request", Health.DOWN),
        ("redis", b"+PONG\r\n", Health.UP),
        ("redis", b"-NOAUTH Authentication required.\r\n", Health.UP),
        ("redis", b"-LOADING Redis is loading the dataset in memory\r\n", Health.DEGRADED),
        ("redis", b"-ERR max number of clients reached\r\n", Health.DOWN),
        ("redis", b"", Health.DOWN),
        ("tcp", b"", Health.UP),
    ],
)
def test_tcp_services_are_judged_by_their_first_answer(protocol: str, reply: bytes, state: str) -> None:
    assert judge_reply(protocol, reply)[0] == state


def test_tcp_targets_are_host_port_or_a_protocol_url() -> None:
    assert health.tcp_target("cdb_postgres:5432") == ("tcp", "cdb_postgres", 5432)
    assert health.tcp_target("redis://cdb_redis:6379") == ("redis", "cdb_redis", 6379)
    for bad in ("redis://cdb_redis", "http://cdb_risk:8002", "cdb_redis"):
        with pytest.raises(ValueError, match="TCP target"):
            health.tcp_target(bad)


# --- Checking (network) ---


def test_every_kind_and_mode_over_http(standins: Callable[..., HealthStandIn]) -> None:
    """The judge table again, this time through real HTTP answers from the stand-ins, in one batch."""
    cases = [(kind, mode) for kind in sorted(KINDS) for mode in (Mode.HEALTHY, Mode.ERROR, Mode.UNAVAILABLE)]
    cases += [(kind, Mode.GARBAGE) for kind in ("risk", "ws", "prometheus")]
    services = [
        MonitoredService(
            name=f"cdb_{kind}", url=standins(kind, mode).url, judge=judge_of(kind).judge, timeout=2
        )
        for kind, mode in cases
    ]
    results = health.check_many(services)
    assert [r.state for r in results] == [expected(kind, mode) for kind, mode in cases]


def test_a_stopped_service_is_down_and_restarts_on_the_same_port(
    standins: Callable[..., HealthStandIn],
) -> None:
    risk = standins("risk")
    service = MonitoredService(name="cdb_risk", url=risk.url, timeout=1.0)
    risk.set_mode(Mode.STOPPED)
    result = health.check_one(service)
    assert (result.state, result.detail) == (Health.DOWN, "cannot connect: Connection refused")
    risk.set_mode(Mode.HEALTHY)
    assert health.check_one(service).state == Health.UP


def test_a_slow_service_is_down_within_its_timeout(standins: Callable[..., HealthStandIn]) -> None:
    slow = standins("market", Mode.SLOW, delay=2.0)
    result = health.check_one(MonitoredService(name="cdb_market", url=slow.url, timeout=0.5))
    assert (result.state, result.detail) == (Health.DOWN, "no answer within 0.5 s")
    assert 450 <= result.latency_ms < 1500


def test_a_huge_body_is_not_read_whole(standins: Callable[..., HealthStandIn]) -> None:
    risk = standins("risk")
    risk.set_answer(200, b'{"status":"ok","pad":"' + b"x" * 1_000_000 + b'"}')
    result = health.check_one(MonitoredService(name="cdb_risk", url=risk.url, timeout=2.0))
    assert result.state == Health.DOWN
    assert "not JSON" in result.detail


def test_a_bad_url_is_down_with_a_clear_detail() -> None:
    result = health.check_one(MonitoredService(name="cdb_risk", url="cdb_risk:8002/health"))
    assert result.state == Health.DOWN
    assert result.detail.startswith("bad URL")


def test_tcp_checks_speak_to_real_postgresql_and_redis() -> None:
    db = django_settings.DATABASES["default"]
    postgres = f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    broker = urlsplit(django_settings.CELERY_BROKER_URL)
    redis = f"redis://{broker.hostname or '127.0.0.1'}:{broker.port or 6379}"
    services = [
        MonitoredService(name="cdb_postgres", url=postgres, check_kind=CheckKind.TCP),
        MonitoredService(name="cdb_redis", url=redis, check_kind=CheckKind.TCP),
    ]
    if broker.scheme != "redis":
        services.pop()
    results = health.check_many(services)
    assert [r.state for r in results] == [Health.UP] * len(services), [r.detail for r in results]


def test_a_tcp_port_that_refuses_is_down(standins: Callable[..., HealthStandIn]) -> None:
    gone = standins("risk")
    gone.stop()
    for url in (f"127.0.0.1:{gone.port}", f"redis://127.0.0.1:{gone.port}"):
        result = health.check_one(MonitoredService(name="x", url=url, check_kind=CheckKind.TCP))
        assert (result.state, result.detail) == (Health.DOWN, "cannot connect: Connection refused")


def test_one_slow_service_does_not_delay_the_others(standins: Callable[..., HealthStandIn]) -> None:
    slow = [service_for(standins(kind, Mode.SLOW, delay=2.0)) for kind in ("market", "regime", "signal")]
    fast = [service_for(standins(kind)) for kind in ("risk", "execution", "candles")]
    started = time.monotonic()
    states = poll_all()
    elapsed = time.monotonic() - started
    # Checked one after another, the slow ones alone would take 3 s (three 1 s timeouts).
    assert elapsed < 1.8, elapsed
    for service in fast:
        result = HealthResult.objects.get(service=service)
        assert result.status == Health.UP
        assert result.latency_ms is not None and result.latency_ms < 500, result.latency_ms
    for service in slow:
        result = HealthResult.objects.get(service=service)
        assert (result.status, result.detail) == (Health.DOWN, "no answer within 1 s")
    assert set(states) == {s.name for s in slow + fast}


# --- Damping ---


def test_it_goes_down_after_three_failures_in_a_row(checks: Checks) -> None:
    service = make_service("cdb_candles")
    assert checks(service, Health.DOWN, Health.DOWN) == Health.UNKNOWN
    assert not Signal.objects.exists()
    assert checks(service, Health.DOWN) == Health.DOWN
    signal = Signal.objects.get()
    assert (signal.status, signal.severity, signal.starts_at) == ("firing", 2, checks.times[0])
    service.refresh_from_db()
    assert (service.failures, service.successes, service.last_detail) == (3, 0, "observed down")


def test_it_comes_back_up_after_two_successes(checks: Checks) -> None:
    service = make_service("cdb_candles")
    checks(service, *[Health.DOWN] * DOWN_AFTER)
    assert checks(service, Health.UP) == Health.DOWN
    assert checks(service, Health.UP) == Health.UP
    resolved = Signal.objects.get(status=SignalStatus.RESOLVED)
    assert resolved.starts_at == checks.times[DOWN_AFTER]  # when the healthy streak began


@pytest.mark.parametrize("start", [Health.UP, Health.DOWN])
def test_flapping_below_the_thresholds_never_transitions(checks: Checks, start: str) -> None:
    service = make_service("cdb_candles")
    checks(service, *[start] * (UP_AFTER if start == Health.UP else DOWN_AFTER))
    before = Signal.objects.count()
    flaps = [Health.DOWN, Health.DOWN, Health.UP] if start == Health.UP else [Health.UP, Health.DOWN]
    for _ in range(5):
        assert checks(service, *flaps) == start
    assert Signal.objects.count() == before


def test_a_fresh_service_coming_up_signals_nothing(checks: Checks) -> None:
    service = make_service("cdb_risk", core=True)
    assert checks(service, Health.UP) == Health.UNKNOWN
    assert checks(service, Health.UP) == Health.UP
    assert not Signal.objects.exists()
    assert not Incident.objects.exists()


def test_degraded_then_down_raises_the_same_incident(checks: Checks) -> None:
    service = make_service("cdb_regime")
    checks(service, *[Health.DEGRADED] * DOWN_AFTER)
    incident = Incident.objects.get()
    assert incident.severity == 3
    assert checks(service, Health.DOWN, Health.DOWN) == Health.DEGRADED
    assert checks(service, Health.DOWN) == Health.DOWN
    incident.refresh_from_db()
    assert (Incident.objects.count(), incident.severity) == (1, 2)
    assert list(Signal.objects.order_by("id").values_list("severity", flat=True)) == [3, 2]
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.SEVERITY_CHANGED).count() == 1


def test_a_mix_of_degraded_and_down_from_up_counts_as_degraded(checks: Checks) -> None:
    service = make_service("cdb_risk", core=True)
    checks(service, *[Health.UP] * UP_AFTER)
    assert checks(service, Health.DOWN, Health.DEGRADED, Health.DOWN) == Health.DEGRADED
    assert Incident.objects.get().severity == 3


def test_between_down_and_degraded_a_mix_moves_nothing(checks: Checks) -> None:
    service = make_service("cdb_market", core=True)
    checks(service, *[Health.DOWN] * DOWN_AFTER)
    assert checks(service, Health.DEGRADED, Health.DEGRADED, Health.DOWN, Health.DEGRADED) == Health.DOWN
    assert checks(service, Health.DEGRADED) == Health.DOWN
    assert checks(service, Health.DEGRADED) == Health.DEGRADED  # three in a row
    # Less severe news never lowers the incident: people do that.
    assert Incident.objects.get().severity == 1


# --- Transitions become incidents ---


@pytest.mark.parametrize(
    ("name", "core", "state", "severity"),
    [
        ("cdb_risk", True, Health.DOWN, 1),
        ("cdb_candles", False, Health.DOWN, 2),
        ("cdb_regime", False, Health.DEGRADED, 3),
        ("cdb_market", True, Health.DEGRADED, 3),
    ],
)
def test_transitions_open_incidents_by_the_playbook_tree(
    checks: Checks, name: str, core: bool, state: str, severity: int
) -> None:
    service = make_service(name, core=core)
    checks(service, *[state] * DOWN_AFTER, detail="status error (HTTP 200)")
    incident = Incident.objects.get()
    assert incident.severity == severity
    assert incident.title == f"{name} is {state}: status error (HTTP 200)"
    assert incident.affected_components == [name]
    assert incident.detected_at == checks.times[0]
    signal = Signal.objects.get()
    assert (signal.source, signal.fingerprint, signal.group_key) == (
        "health",
        f"health:{name}",
        f"health:{name}",
    )
    assert signal.incident == incident
    assert signal.labels["core"] == ("true" if core else "false")


def test_recovery_is_written_on_the_timeline_and_does_not_close(checks: Checks) -> None:
    service = make_service("cdb_candles")
    checks(service, *[Health.DOWN] * DOWN_AFTER)
    checks(service, *[Health.UP] * UP_AFTER, detail="status ok")
    incident = Incident.objects.get()
    assert incident.status == Status.TRIAGE
    assert incident.resolved_at is None and incident.closed_at is None
    last = TimelineEvent.objects.filter(incident=incident).order_by("id").last()
    assert last is not None
    assert (last.kind, last.message) == (EventKind.SIGNAL, "Resolved (health: cdb_candles is up: status ok)")
    assert Signal.objects.get(status=SignalStatus.RESOLVED).incident == incident


def test_a_second_outage_joins_the_incident_still_open(checks: Checks) -> None:
    service = make_service("cdb_candles")
    checks(service, *[Health.DOWN] * DOWN_AFTER, *[Health.UP] * UP_AFTER, *[Health.DOWN] * DOWN_AFTER)
    incident = Incident.objects.get()
    assert [m.split(" (")[0] for m in timeline(incident)][1:] == ["Firing", "Resolved", "Firing"]


def test_one_service_failing_to_record_does_not_stop_the_others(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HEALTH_DOWN_AFTER = 1
    broken, fine = make_service("cdb_broken"), make_service("cdb_fine")  # both refuse connections
    real = health.transition_alert

    def alert(service: MonitoredService, *args: Any) -> Any:
        if service.name == "cdb_broken":
            raise RuntimeError("boom")
        return real(service, *args)

    monkeypatch.setattr(health, "transition_alert", alert)
    with pytest.raises(health.HealthPollError, match="cdb_broken"):
        poll_all()
    broken.refresh_from_db()
    fine.refresh_from_db()
    # The broken one's whole transaction rolled back: it is retried on the next poll.
    assert (broken.state, broken.failures, broken.results.count()) == (Health.UNKNOWN, 0, 0)
    assert (fine.state, Incident.objects.get().title.startswith("cdb_fine is down")) == (Health.DOWN, True)
    assert Heartbeat.objects.filter(name="health").exists()


# --- Polling ---


def test_poll_all_checks_enabled_services_and_records_its_heartbeat(
    standins: Callable[..., HealthStandIn],
) -> None:
    risk = service_for(standins("risk"))
    market = service_for(standins("market", Mode.UNAVAILABLE))
    make_service("cdb_signal", enabled=False)
    make_service("cdb_reports", url="", check_kind=CheckKind.NONE)
    assert poll_all() == {"cdb_risk": Health.UNKNOWN, "cdb_market": Health.UNKNOWN}
    assert poll_all() == {"cdb_risk": Health.UP, "cdb_market": Health.UNKNOWN}
    assert HealthResult.objects.count() == 4
    market.refresh_from_db()
    assert (market.failures, market.last_detail, market.last_reply) == (
        2,
        "status degraded (HTTP 503)",
        '["BTCUSDT: no trade for 95 s"]',
    )
    risk.refresh_from_db()
    assert (risk.successes, risk.last_latency_ms is not None, risk.last_checked_at is not None) == (
        2,
        True,
        True,
    )
    last_seen = Heartbeat.objects.get(name="health").last_seen
    assert last_seen is not None and last_seen > timezone.now() - timedelta(seconds=10)


@pytest.mark.parametrize(("kind", "severity"), [("risk", 1), ("candles", 2)])
def test_stopping_a_standin_opens_its_incident_and_starting_it_writes_the_recovery(
    standins: Callable[..., HealthStandIn], kind: str, severity: int
) -> None:
    """The acceptance test: the whole loop, at a short polling interval, against running stand-ins."""
    running = {k: standins(k) for k in ("risk", "market", "ws", "candles")}
    for standin in running.values():
        service_for(standin)
    name = f"cdb_{kind}"

    def poll() -> dict[str, str]:
        states = poll_all()
        time.sleep(0.05)  # the polling interval
        return states

    for _ in range(UP_AFTER):
        states = poll()
    assert set(states.values()) == {Health.UP}

    running[kind].set_mode(Mode.STOPPED)
    polls = 0
    while not Incident.objects.exists() and polls < 10:
        states = poll()
        polls += 1
    assert polls == DOWN_AFTER
    incident = Incident.objects.get()
    assert (incident.severity, incident.title) == (
        severity,
        f"{name} is down: cannot connect: Connection refused",
    )
    assert states == {n: Health.DOWN if n == name else Health.UP for n in states}

    running[kind].set_mode(Mode.HEALTHY)
    polls = 0
    while not any(m.startswith("Resolved") for m in timeline(incident)) and polls < 10:
        states = poll()
        polls += 1
    assert polls == UP_AFTER
    assert set(states.values()) == {Health.UP}
    incident.refresh_from_db()
    assert incident.status == Status.TRIAGE  # never closed automatically
    assert [m.split(" (")[0] for m in timeline(incident)][1:] == ["Firing", "Resolved"]
    assert Incident.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_polls_health_through_the_broker(settings: Any, fresh_queue: None) -> None:
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test runs against Redis"
    settings.HEALTH_DOWN_AFTER = settings.HEALTH_UP_AFTER = 1
    with HealthStandIn("risk") as risk, HealthStandIn("candles", Mode.STOPPED) as candles:
        service_for(risk)
        service_for(candles)
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            tasks.poll_health.delay()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not Heartbeat.objects.filter(name="health").exists():
                time.sleep(0.2)
    states = dict(MonitoredService.objects.values_list("name", "state"))
    assert states == {"cdb_risk": Health.UP, "cdb_candles": Health.DOWN}
    incident = Incident.objects.get()
    assert (incident.severity, incident.affected_components) == (2, ["cdb_candles"])


# --- Retention ---


def test_prune_keeps_the_newest_results_of_each_service(
    settings: Any, django_assert_max_num_queries: Any
) -> None:
    settings.HEALTH_RESULTS_KEEP = 5
    now = timezone.now()
    many, few = make_service("cdb_many"), make_service("cdb_few")
    make_service("cdb_none")
    # Stored out of order: "newest" is by check time, not by row id.
    for seconds in [3, 9, 1, 7, 5, 8, 2, 6]:
        HealthResult.objects.create(service=many, checked_at=now - timedelta(seconds=seconds), status="up")
    for seconds in [1, 2, 3]:
        HealthResult.objects.create(service=few, checked_at=now - timedelta(seconds=seconds), status="up")
    with django_assert_max_num_queries(6):
        assert prune_results() == 3
    kept = sorted(int((now - r.checked_at).total_seconds()) for r in many.results.all())
    assert kept == [1, 2, 3, 5, 6]
    assert few.results.count() == 3
    assert prune_results() == 0


def test_prune_never_keeps_fewer_than_the_damping_window(settings: Any, checks: Checks) -> None:
    settings.HEALTH_RESULTS_KEEP = 1
    service = make_service("cdb_candles")
    checks(service, *[Health.UP] * 5)
    prune_results()
    assert service.results.count() == DOWN_AFTER


# --- The stack as data ---


def loaded() -> dict[str, MonitoredService]:
    return {s.name: s for s in MonitoredService.objects.all()}


def test_load_services_loads_cdbs_stack_disabled() -> None:
    call_command("load_services", verbosity=0)
    services = loaded()
    assert len(services) == 15
    assert not any(s.enabled for s in services.values())
    assert {n for n, s in services.items() if s.core} == {
        "cdb_risk",
        "cdb_execution",
        "cdb_market",
        "cdb_ws",
        "cdb_postgres",
        "cdb_redis",
    }
    for kind in KINDS.values():  # the stand-ins' ports and paths are docs/cdb/contracts.md, section 2's
        assert services[kind.name].url == f"http://{kind.name}:{kind.port}{kind.path}"
        assert services[kind.name].check_kind == CheckKind.HTTP_JSON
    assert services["cdb_ws"].judge == Judge.WS
    assert services["cdb_postgres"].url == "postgres://cdb_postgres:5432"
    assert services["cdb_redis"].url == "redis://cdb_redis:6379"
    assert {n for n, s in services.items() if s.check_kind == CheckKind.NONE} == {
        "cdb_db_writer",
        "cdb_reports",
    }
    assert services["cdb_reports"].url == ""


def test_load_services_builds_urls_from_the_deployments_base_url(settings: Any) -> None:
    settings.CDB_BASE_URL = "https://10.0.0.5:{port}/"
    settings.DETECTION_ALLOWED_HOSTS = ["10.0.0.5"]
    call_command("load_services", "--enable", verbosity=0)
    services = loaded()
    assert services["cdb_risk"].url == "https://10.0.0.5:8002/health"
    assert services["cdb_redis"].url == "redis://10.0.0.5:6379"
    assert all(s.enabled for s in services.values())


def test_load_services_is_idempotent_and_keeps_admin_edits() -> None:
    call_command("load_services", verbosity=0)
    MonitoredService.objects.filter(name="cdb_risk").update(
        url="http://risk.internal:8002/health", enabled=True, timeout=5.0
    )
    MonitoredService.objects.filter(name="cdb_signal").update(core=True)
    MonitoredService.objects.filter(name="cdb_reports").delete()
    call_command("load_services", verbosity=0)
    services = loaded()
    assert len(services) == 15
    risk = services["cdb_risk"]
    assert (risk.url, risk.enabled, risk.timeout) == ("http://risk.internal:8002/health", True, 5.0)
    assert services["cdb_signal"].core


def test_load_services_rewrites_urls_and_switches_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("load_services", verbosity=0)
    MonitoredService.objects.filter(name="cdb_risk").update(url="http://elsewhere:1/health")
    call_command("load_services", "--base-url", "http://127.0.0.1:{port}", "--enable")
    assert "0 created, 15 updated, 0 unchanged" in capsys.readouterr().out
    services = loaded()
    assert services["cdb_risk"].url == "http://127.0.0.1:8002/health"
    assert all(s.enabled for s in services.values())
    call_command("load_services", "--disable", verbosity=0)
    assert not any(s.enabled for s in loaded().values())
    assert loaded()["cdb_risk"].url == "http://127.0.0.1:8002/health"


@pytest.mark.parametrize("template", ["http://{host}:{port}", "cdb_{name}:{port}", "http://{name}:{0}"])
def test_load_services_refuses_a_bad_base_url(template: str) -> None:
    with pytest.raises(CommandError, match="base URL"):
        call_command("load_services", "--base-url", template, verbosity=0)
    assert not MonitoredService.objects.exists()
