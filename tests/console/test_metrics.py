"""GET /metrics: Prometheus's text format, closed unless a bearer token or an allowed network is
configured; values read from the database at scrape time; webhook counts summed over every gunicorn
process. The example alert rules are valid (promtool), use only exposed names, and README lists every
name (they are a public interface)."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from console.services import heartbeat
from detection.health import CheckResult, health_record
from detection.models import Health, MonitoredService, Signal
from incidents import services as incident_services
from incidents.models import Severity, Status
from tests.detection.test_webhooks import TOKEN as AM_TOKEN
from tests.detection.test_webhooks import alert, am_payload
from tests.incidents.factories import declare, make_user
from tests.test_deploy import _gunicorn

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
RULES = ROOT / "deploy" / "prometheus" / "console-rules.yml"
TOKEN = "metrics-token-0123456789"
METRICS = reverse("metrics")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _metrics_settings(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.WEBHOOK_TOKENS = {"alertmanager": AM_TOKEN, "grafana": ""}


def scrape(client: Any, token: str = TOKEN, **extra: Any) -> Samples:
    response = client.get(METRICS, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# --- Who may scrape -------------------------------------------------------------------------------


def test_it_is_closed_by_default_even_to_logged_in_people(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    for user in (None, make_user(role="admin", is_staff=True, is_superuser=True)):
        if user is not None:
            client.force_login(user)
        for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer "}, {"HTTP_AUTHORIZATION": "Bearer x"}):
            response = client.get(METRICS, **headers)
            assert response.status_code == 401 and response["WWW-Authenticate"] == 'Bearer realm="metrics"'
            assert b"cdb_console" not in response.content


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer tökén", TOKEN])
def test_a_wrong_token_is_401(client: Any, header: str) -> None:
    assert client.get(METRICS, HTTP_AUTHORIZATION=header).status_code == 401


def test_the_token_opens_it(client: Any) -> None:
    assert value(scrape(client), "cdb_console_signals_waiting") == 0


def test_an_allowed_network_scrapes_without_a_token(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16", "127.0.0.1"]
    assert client.get(METRICS).status_code == 200  # the test client's address is 127.0.0.1
    assert client.get(METRICS, REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get(METRICS, REMOTE_ADDR="10.21.3.4").status_code == 401
    assert client.get(METRICS, REMOTE_ADDR="not an address").status_code == 401


def test_a_direct_scrape_over_http_is_not_redirected_to_https(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new handler reads the setting
    assert client.get(reverse("login")).status_code == 301
    assert client.get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_only_get(client: Any) -> None:
    assert client.post(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


# --- What it says -----------------------------------------------------------------------------------


def test_incidents_open_overdue_and_breached(client: Any, responder: Any) -> None:
    now = timezone.now()
    declare(responder, severity=Severity.SEV1)
    investigating = declare(responder, severity=Severity.SEV2)
    incident_services.incident_acknowledge(incident=investigating, actor=responder)
    incident_services.incident_assign_commander(incident=investigating, actor=responder, commander=responder)
    incident_services.incident_change_status(
        incident=investigating, actor=responder, to_status=Status.INVESTIGATING
    )
    declare(responder, severity=Severity.SEV1, detected_at=now - timedelta(minutes=30))  # overdue
    declare(responder, severity=Severity.SEV1, is_drill=True)
    closed = declare(responder, severity=Severity.SEV3)
    incident_services.incident_acknowledge(incident=closed, actor=responder)
    for status in (Status.RESOLVED, Status.CLOSED):
        incident_services.incident_change_status(incident=closed, actor=responder, to_status=status)
    incident_services.sla_breaches_sweep()
    samples = scrape(client)
    assert value(samples, "cdb_console_incidents_open", severity="1", status="triage", drill="false") == 2
    assert value(samples, "cdb_console_incidents_open", severity="1", status="triage", drill="true") == 1
    assert (
        value(samples, "cdb_console_incidents_open", severity="2", status="investigating", drill="false") == 1
    )
    assert not [k for k in samples if k[0] == "cdb_console_incidents_open" and ("severity", "3") in k[1]]
    assert value(samples, "cdb_console_incidents_ack_overdue", severity="1", drill="false") == 1
    assert value(samples, "cdb_console_sla_breaches_total", severity="1", drill="false") == 1


def test_the_kill_switch_state_and_reconcile_age_of_each_target(client: Any, ks_files: Any) -> None:
    from killswitch import services as ks
    from killswitch.models import TargetState

    TargetState.objects.all().delete()  # the fixture's first look: this test starts before any read
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        samples = scrape(client)
        assert value(samples, "cdb_console_killswitch_state", target="production") == -1  # never read
        assert value(samples, "cdb_console_killswitch_reconcile_age_seconds", target="production") == math.inf
        ks.killswitch_reconcile_all()
        ks.killswitch_activate(
            target="production", actor=make_user(role="responder"), reason="manual", message="metrics"
        )
    ks_files.drill.write_text("not a state file\x00")
    with time_machine.travel(start + timedelta(seconds=3), tick=False):
        ks.killswitch_reconcile_all()
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        samples = scrape(client)
    assert value(samples, "cdb_console_killswitch_state", target="production") == 1
    assert value(samples, "cdb_console_killswitch_state", target="drill") == -1
    assert value(samples, "cdb_console_killswitch_reconcile_age_seconds", target="production") == 7
    assert value(samples, "cdb_console_killswitch_reconcile_age_seconds", target="drill") == 7


def test_signals_stored_routed_waiting_and_the_routing_lag(client: Any) -> None:
    from detection.services import signals_route

    for fp in ("a", "b"):
        response = client.post(
            reverse("detection:alertmanager"),
            am_payload(alert(fp=fp)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {AM_TOKEN}",
        )
        assert response.status_code == 200
    signals_route()
    start = timezone.now()
    Signal.objects.create(
        source="grafana",
        dedup_key="g|1|firing",
        group_key="grafana:x",
        fingerprint="g",
        status="firing",
        severity=3,
        title="waiting",
        starts_at=start,
        received_at=start - timedelta(seconds=45),
    )
    with time_machine.travel(start, tick=False):
        samples = scrape(client)
    assert value(samples, "cdb_console_signals_stored_total", source="alertmanager") == 2
    assert value(samples, "cdb_console_signals_routed_total", source="alertmanager") == 2
    assert value(samples, "cdb_console_signals_stored_total", source="grafana") == 1
    assert value(samples, "cdb_console_signals_routed_total", source="grafana") == 0
    assert value(samples, "cdb_console_signals_waiting") == 1
    assert value(samples, "cdb_console_routing_lag_seconds") == 45


def test_webhook_requests_by_status(client: Any) -> None:
    def count(status: str) -> float:
        return scrape(client).get(
            (
                "cdb_console_webhook_requests_total",
                frozenset({"source": "alertmanager", "status": status}.items()),
            ),
            0.0,
        )

    before = {status: count(status) for status in ("200", "400", "401")}
    url = reverse("detection:alertmanager")
    for token, body in [(AM_TOKEN, am_payload(alert())), (AM_TOKEN, {"version": "3"}), ("wrong", {})]:
        client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert {status: count(status) - before[status] for status in before} == {"200": 1, "400": 1, "401": 1}


def test_health_checks_by_result_and_each_services_state(client: Any) -> None:
    service = MonitoredService.objects.create(name="cdb_risk", url="http://cdb_risk:8002/health", core=True)
    MonitoredService.objects.create(name="cdb_off", url="http://cdb_off:1/health", enabled=False)
    now = timezone.now()
    for i, state in enumerate([Health.UP, Health.DEGRADED, Health.DOWN, Health.DOWN, Health.DOWN]):
        result = CheckResult(state, "observed", 1.0, now + timedelta(seconds=i))
        health_record(service_id=service.pk, result=result)
    samples = scrape(client)
    counts = {
        r: value(samples, "cdb_console_health_checks_total", service="cdb_risk", result=r)
        for r in Health.values
        if r != Health.UNKNOWN
    }
    assert counts == {"up": 1, "degraded": 1, "down": 3}
    states = {
        s: value(samples, "cdb_console_service_state", service="cdb_risk", state=s) for s in Health.values
    }
    assert states == {"unknown": 0, "up": 0, "degraded": 0, "down": 1}  # damped: down after 3 in a row
    assert not [k for k in samples if ("service", "cdb_off") in k[1]]


def test_periodic_jobs_age_and_failing(client: Any) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        heartbeat("alert routing")
        heartbeat("health", error="HealthPollError: boom")
    with time_machine.travel(start + timedelta(seconds=12), tick=False):
        samples = scrape(client)
    assert value(samples, "cdb_console_job_age_seconds", job="alert routing") == 12
    assert value(samples, "cdb_console_job_failing", job="alert routing") == 0
    assert value(samples, "cdb_console_job_age_seconds", job="health") == math.inf
    assert value(samples, "cdb_console_job_failing", job="health") == 1


def test_a_database_that_does_not_answer_is_a_503(client: Any, monkeypatch: Any) -> None:
    from django.db import OperationalError

    from console import metrics

    def refuse() -> bytes:
        raise OperationalError("the database did not answer")

    monkeypatch.setattr(metrics, "exposition", refuse)
    response = client.get(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 503


# --- Several processes --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_webhook_counts_are_summed_over_every_gunicorn_process(tmp_path: Path) -> None:
    """gunicorn with two processes: deliveries land on either, and every scrape, whichever process
    answers it, counts them all (prometheus-client's multiprocess mode)."""
    db = connection.settings_dict
    counters = tmp_path / "metrics"
    counters.mkdir()
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "1",
        "METRICS_TOKEN": TOKEN,
        "ALERTMANAGER_WEBHOOK_TOKEN": AM_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(counters),
    }
    with _gunicorn(tmp_path / "gunicorn.log", **env) as port:
        base = f"http://127.0.0.1:{port}"
        sent = 0
        deadline = time.monotonic() + 60
        # Until both processes have counted something (each keeps its own file of counts).
        while len({p.name for p in counters.glob("counter_*.db")}) < 2 and time.monotonic() < deadline:
            with httpx.Client() as http:  # a new connection each round: any process may take it
                answer = http.post(
                    f"{base}/detection/webhooks/alertmanager/",
                    json={},
                    headers={"Authorization": "Bearer no"},
                )
            assert answer.status_code == 401
            sent += 1
        assert len(list(counters.glob("counter_*.db"))) == 2, "the deliveries all reached one process"
        for _ in range(6):
            with httpx.Client() as http:
                text = http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
            samples = parse(text)
            assert (
                value(samples, "cdb_console_webhook_requests_total", source="alertmanager", status="401")
                == sent
            )


# --- Alert rules and the public names ---------------------------------------------------------------


def exposed_names(client: Any) -> set[str]:
    """Every sample name /metrics can expose, with data in each family."""
    from killswitch import services as ks

    declare(
        make_user(role="responder"), severity=Severity.SEV1, detected_at=timezone.now() - timedelta(hours=1)
    )
    incident_services.sla_breaches_sweep()
    ks.killswitch_reconcile_all()
    service = MonitoredService.objects.create(name="cdb_risk", url="http://cdb_risk:8002/health")
    health_record(service_id=service.pk, result=CheckResult(Health.UP, "ok", 1.0, timezone.now()))
    client.post(reverse("detection:alertmanager"), {}, content_type="application/json")
    client.post(
        reverse("detection:alertmanager"),
        am_payload(alert()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {AM_TOKEN}",
    )
    return {name for name, _ in scrape(client)}


def test_readme_lists_every_metric(client: Any, ks_files: Any) -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(cdb_\w+)`", readme, re.M))
    assert exposed_names(client) == documented


def test_the_example_alert_rules_are_valid_and_use_only_exposed_names(client: Any, ks_files: Any) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    assert os.path.exists(promtool), "promtool comes with Debian's prometheus package: make prometheus"
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", str(RULES.with_name("console-rules.test.yml"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    used = set(re.findall(r"\bcdb_console_\w+", RULES.read_text()))
    assert used and used <= exposed_names(client), used
