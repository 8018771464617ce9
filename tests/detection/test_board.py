"""The status board and an incident's "Alerts and signals"."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from console.models import Heartbeat
from detection.models import (
    Health,
    HealthResult,
    MonitoredService,
    PrometheusRule,
    RuleState,
    Signal,
)
from detection.selectors import TREND_POINTS
from detection.services import signals_route
from incidents.models import Incident
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
TOKEN = "test-alertmanager-token"
BOARD = reverse("detection:board")
UNSAFE_LINK = re.compile(r"<a\b[^>]*\bhref=[\"']?\s*(javascript|data|vbscript):", re.IGNORECASE)


@pytest.fixture
def tokens(settings: Any) -> None:
    settings.WEBHOOK_TOKENS = {"alertmanager": TOKEN, "grafana": "test-grafana-token"}


def signals_panel(response: Any) -> list[Any]:
    """The rows of the incident page's "Alerts and signals" panel, as the view gave them."""
    [panel] = [p for p in response.context["panels"]["main"] if p.id == "incident-signals"]
    return panel.context["signals"]


def service(name: str, *, core: bool = False, results: int = 0, **kwargs: Any) -> MonitoredService:
    now = timezone.now()
    svc = MonitoredService.objects.create(
        name=name, core=core, state=kwargs.pop("state", Health.UP), last_checked_at=now, **kwargs
    )
    HealthResult.objects.bulk_create(
        HealthResult(
            service=svc,
            checked_at=now - timedelta(seconds=15 * i),
            status=Health.DOWN if i % 7 == 3 else Health.UP,
            latency_ms=None if i % 7 == 3 else 10.0 + i,
        )
        for i in range(results)
    )
    return svc


def signal(n: int, *, incident: Incident | None = None, **kwargs: Any) -> Signal:
    now = timezone.now()
    defaults: dict[str, Any] = {
        "source": "alertmanager",
        "dedup_key": f"fp{n}|start|firing",
        "group_key": "alertmanager:alertname=ServiceDown,service=cdb_risk",
        "fingerprint": f"fp{n}",
        "status": "firing",
        "severity": 2,
        "title": f"ServiceDown: signal {n}",
        "starts_at": now,
        "received_at": now + timedelta(microseconds=n),
        "incident": incident,
    }
    return Signal.objects.create(**(defaults | kwargs))


def rule(name: str, **kwargs: Any) -> PrometheusRule:
    return PrometheusRule.objects.create(name=name, expr='up{job=~"cdb_.*"} == 0', **kwargs)


def hostile_alertmanager_payload() -> dict[str, Any]:
    """Alertmanager v4, as CDB's `ServiceDown` rule sends it, with hostile label and annotation text."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ServiceDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "critical-receiver",
        "groupLabels": {"alertname": "ServiceDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "<script>alert(1)</script>",
                    "severity": "critical",
                    "job": "cdb_risk",
                    "instance": '"><img src=x onerror=alert(2)>',
                },
                "annotations": {
                    "summary": "Service <b>cdb_risk</b> is down",
                    "description": "<iframe src=javascript:alert(3)></iframe> has been down for 1 minute.",
                    "runbook_url": "javascript:alert(4)",
                },
                "startsAt": "2026-01-05T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",
                "fingerprint": "c0ffee0000000001",
            },
            {
                "status": "firing",
                "labels": {"alertname": "RedisConnectionLost", "severity": "critical", "job": "cdb_redis"},
                "annotations": {"summary": "x", "runbook_url": " JavaScript:alert(5)"},
                "startsAt": "2026-01-05T10:00:01Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "data:text/html,<script>alert(6)</script>",
                "fingerprint": "c0ffee0000000002",
            },
        ],
    }


def assert_no_live_markup(body: str) -> None:
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert "<iframe" not in body
    assert "<b>cdb_risk</b>" not in body
    assert not UNSAFE_LINK.search(body)
    assert 'style="' not in body  # style-src 'self': no inline styles anywhere


# --- The status board ---------------------------------------------------------------------------


class TestBoard:
    def test_every_role_with_view_incident_sees_it(self, client, viewer, executive):
        for user in (viewer, executive):
            client.force_login(user)
            response = client.get(BOARD)
            assert response.status_code == 200
            assert "detection/board.html" in [t.name for t in response.templates]

    def test_no_role_is_forbidden_and_anonymous_logs_in(self, client, norole):
        response = client.get(BOARD)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
        client.force_login(norole)
        assert client.get(BOARD).status_code == 403

    def test_only_get(self, client, viewer):
        client.force_login(viewer)
        assert client.post(BOARD).status_code == 405

    def test_services_core_first_with_state_age_latency_and_trend(self, client, viewer):
        service("cdb_ws", results=3, state=Health.DEGRADED, last_latency_ms=812.4, last_detail="ws lag")
        service("cdb_risk", core=True, results=TREND_POINTS + 10, state=Health.DOWN, last_latency_ms=None)
        service("cdb_execution", core=True, state=Health.UP, last_latency_ms=4.0)
        MonitoredService.objects.create(name="cdb_never")  # never checked: unknown, "never"
        client.force_login(viewer)
        with time_machine.travel(timezone.now() + timedelta(seconds=12), tick=False):
            response = client.get(BOARD)
        body = response.content.decode()
        board = response.context["board"]
        assert [r.service.name for r in board.core] == ["cdb_execution", "cdb_risk"]
        assert [r.service.name for r in board.other] == ["cdb_never", "cdb_ws"]
        assert board.counts == {"unknown": 1, "up": 1, "degraded": 1, "down": 1}
        assert body.index("Core trading path") < body.index("cdb_execution") < body.index("Other services")
        assert body.index("Other services") < body.index("cdb_ws")

        risk = next(r for r in board.core if r.service.name == "cdb_risk")
        assert len(risk.trend.bars) == TREND_POINTS  # the newest 30 of 40, oldest on the left
        assert [b.x for b in risk.trend.bars] == sorted(b.x for b in risk.trend.bars)
        assert {b.status for b in risk.trend.bars} == {"up", "down"}
        assert all(b.height == risk.trend.height for b in risk.trend.bars if b.status == "down")

        row = re.search(r'<tr class="service[^"]*" data-service="cdb_ws">(.*?)</tr>', body, re.S)
        assert row, body
        assert "12 s ago" in row.group(1) and "812 ms" in row.group(1) and "ws lag" in row.group(1)
        assert 'class="health health-degraded"' in row.group(1)
        assert row.group(1).count("<rect ") == 3
        never = re.search(r'data-service="cdb_never">(.*?)</tr>', body, re.S)
        assert never and "never" in never.group(1) and "<rect " not in never.group(1)
        assert 'style="' not in body

    def test_rule_states_and_recent_signals(self, client, viewer, responder):
        rule(
            "ServiceDown",
            severity=1,
            state=RuleState.FIRING,
            last_value=0.0,
            last_evaluated_at=timezone.now(),
        )
        rule("HighLatency", severity=3, state=RuleState.ERROR, last_error="bad_data: parse error <x>")
        rule("Quiet", severity=4)
        incident = declare(responder)
        for n in range(3):
            signal(n, incident=incident if n == 1 else None)
        client.force_login(viewer)
        response = client.get(BOARD)
        body = response.content.decode()
        assert [r.rule.name for r in response.context["board"].rules] == [
            "ServiceDown",
            "HighLatency",
            "Quiet",
        ]
        assert 'class="rule-state rule-firing"' in body and 'class="rule-state rule-error"' in body
        assert "bad_data: parse error &lt;x&gt;" in body
        titles = [r.signal.title for r in response.context["board"].signals]
        assert titles == ["ServiceDown: signal 2", "ServiceDown: signal 1", "ServiceDown: signal 0"]
        assert body.count(f'href="{reverse("incidents:detail", args=[incident.pk])}"') == 1

    def test_shows_only_the_newest_50_signals(self, client, viewer):
        for n in range(55):
            signal(n)
        client.force_login(viewer)
        signals = client.get(BOARD).context["board"].signals
        assert len(signals) == 50
        assert signals[0].signal.title == "ServiceDown: signal 54"

    def test_htmx_poll_gets_the_board_partial(self, client, viewer):
        service("cdb_risk", core=True, results=2)
        client.force_login(viewer)
        response = client.get(BOARD, **HX)
        body = response.content.decode()
        assert response.status_code == 200
        assert body.lstrip().startswith('<div id="board"')
        assert 'hx-trigger="every 5s"' in body and f'hx-get="{BOARD}"' in body
        assert "<html" not in body and 'id="liveness"' not in body
        assert "HX-Request" in response["Vary"]
        full = client.get(BOARD).content.decode()
        assert '<div id="board"' in full and "<html" in full

    def test_query_count_does_not_grow_with_the_data(
        self, client, viewer, responder, django_assert_max_num_queries
    ):
        incident = declare(responder)
        service("cdb_risk", core=True, results=5)
        rule("ServiceDown")
        signal(0, incident=incident)
        client.force_login(viewer)
        client.get(BOARD)
        with django_assert_max_num_queries(15) as ctx:
            client.get(BOARD)
        small = len(ctx.captured_queries)
        for i in range(8):
            service(f"cdb_{i}", core=i % 2 == 0, results=TREND_POINTS + 5)
            rule(f"Rule{i}")
        for n in range(1, 80):
            signal(n, incident=incident if n % 3 else None)
        with django_assert_max_num_queries(small):
            response = client.get(BOARD)
        assert len(response.context["board"].core) == 5
        with django_assert_max_num_queries(small):
            client.get(BOARD, **HX)


# --- Periodic jobs ------------------------------------------------------------------------------


def jobs_section(client: Any) -> str:
    body = client.get(BOARD).content.decode()
    match = re.search(r'<section class="card" id="board-jobs".*?</section>', body, re.S)
    assert match, body
    return match.group(0)


class TestFailingJobs:
    def test_a_failing_job_shows_its_error_and_since_when_until_it_succeeds(self, client, viewer):
        """A periodic job whose latest run failed (the kill switch's reconcile of one target, health
        polling) is listed with its error and the first failure of the streak; it leaves the list
        when a run succeeds."""
        from console.services import heartbeat

        start = timezone.now().replace(microsecond=0)
        at = lambda seconds: start + timedelta(seconds=seconds)  # noqa: E731
        with time_machine.travel(start, tick=False):
            for job in ("alert routing", "health", "kill switch production", "kill switch drill"):
                heartbeat(job)
        with time_machine.travel(at(10), tick=False):
            heartbeat("kill switch production", error="OSError: [Errno 5] Input/output error")
        with time_machine.travel(at(20), tick=False):
            heartbeat("kill switch production", error="TimeoutError: read timed out")
            heartbeat("health", error="HealthPollError: health checks not recorded for: cdb_risk")
            heartbeat("alert routing")
            heartbeat("kill switch drill")  # still running: not overdue
        client.force_login(viewer)
        with time_machine.travel(at(25), tick=False):
            section = jobs_section(client)
        rows = {
            job: re.sub(r"<[^>]+>", "", html)  # the text a person reads
            for job, html in re.findall(
                r'<li class="job-failing" data-job="([^"]+)">(.*?)</li>', section, re.S
            )
        }
        assert set(rows) == {"kill switch production", "health"}, section
        production = rows["kill switch production"]
        assert "TimeoutError: read timed out" in production and "Input/output" not in production
        assert f"failing since {timezone.localtime(at(10)):%H:%M:%S}" in production and "15 s" in production
        assert f"last success {timezone.localtime(start):%H:%M:%S}" in production
        assert f"failing since {timezone.localtime(at(20)):%H:%M:%S}" in rows["health"]
        with time_machine.travel(at(30), tick=False):
            heartbeat("kill switch production")
            section = jobs_section(client)
        assert 'data-job="kill switch production"' not in section and 'data-job="health"' in section

    def test_no_failing_job_says_all_run(self, client, viewer):
        from console.services import heartbeat

        heartbeat("kill switch production")
        client.force_login(viewer)
        section = jobs_section(client)
        assert "job-failing" not in section and "Every periodic job's latest run succeeded" in section


# --- Untrusted text -----------------------------------------------------------------------------


class TestUntrustedText:
    def test_hostile_labels_and_annotations_are_escaped_and_only_http_links(
        self, client, tokens, viewer, responder
    ):
        response = client.post(
            reverse("detection:alertmanager"),
            json.dumps(hostile_alertmanager_payload()),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        )
        assert response.status_code == 200, response.content
        signals_route()
        hostile = Signal.objects.get(fingerprint="c0ffee0000000001")
        assert hostile.links == ["http://prometheus:9090/graph?g0.expr=up%3D%3D0&g0.tab=1"]
        assert Signal.objects.get(fingerprint="c0ffee0000000002").links == []

        client.force_login(viewer)
        board = client.get(BOARD).content.decode()
        incident_page = client.get(reverse("incidents:detail", args=[hostile.incident_id])).content.decode()
        for body in (board, incident_page):
            assert_no_live_markup(body)
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
            assert 'href="http://prometheus:9090/graph?g0.expr=up%3D%3D0&amp;g0.tab=1"' in body
            assert body.count('rel="noopener noreferrer nofollow"') == 1
        assert "&lt;iframe src=javascript:alert(3)&gt;" in incident_page  # the summary, as text

    def test_links_are_filtered_again_when_shown(self, client, viewer, responder):
        # A row written by another path (admin, a future source) still cannot link javascript: or data:.
        incident = declare(responder)
        signal(
            1,
            incident=incident,
            links=["javascript:alert(1)", "data:text/html,x", "  jAvAsCrIpT:alert(2)", "https://grafana/d/x"],
            title='"><script>alert(7)</script>',
        )
        client.force_login(viewer)
        for url in (BOARD, reverse("incidents:detail", args=[incident.pk])):
            body = client.get(url).content.decode()
            assert not UNSAFE_LINK.search(body)
            assert 'href="https://grafana/d/x"' in body
            assert "<script>alert(7)" not in body and "&quot;&gt;&lt;script&gt;alert(7)" in body

    def test_a_signal_time_python_cannot_read_does_not_break_the_pages(self, client, viewer, responder):
        # PostgreSQL stores 9999-12-31T23:59:59-14:00 as year 10000 UTC; reading it back would raise.
        incident = declare(responder)
        far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt_timezone(timedelta(hours=-14)))
        signal(1, incident=incident, starts_at=far, ends_at=far)
        client.force_login(viewer)
        assert client.get(BOARD).status_code == 200
        assert client.get(reverse("incidents:detail", args=[incident.pk])).status_code == 200


# --- The incident page's "Alerts and signals" ---------------------------------------------------


class TestIncidentSignals:
    def test_lists_the_incidents_signals_newest_first(self, client, viewer, responder):
        incident = declare(responder)
        other = declare(responder)
        signal(1, incident=incident, summary="cdb_risk has been down for more than 1 minute.")
        signal(2, incident=incident, status="resolved", source="grafana", links=["https://grafana/d/1"])
        signal(3, incident=other)
        client.force_login(viewer)
        response = client.get(reverse("incidents:detail", args=[incident.pk]))
        body = response.content.decode()
        section = body[body.index('id="incident-signals"') :]
        assert [r.signal.fingerprint for r in signals_panel(response)] == ["fp2", "fp1"]
        assert section.index("signal 2") < section.index("signal 1")
        assert "signal 3" not in body
        assert "Grafana" in section and "Resolved" in section and "more than 1 minute" in section
        assert 'href="https://grafana/d/1"' in section

    def test_no_signals_says_so(self, client, viewer, responder):
        incident = declare(responder)
        client.force_login(viewer)
        body = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
        assert "No alerts or signals are attached to this incident." in body

    def test_shows_at_most_50_in_one_query(self, client, viewer, responder, django_assert_max_num_queries):
        incident = declare(responder)
        signal(0, incident=incident)
        client.force_login(viewer)
        client.get(reverse("incidents:detail", args=[incident.pk]))
        with django_assert_max_num_queries(30) as ctx:
            client.get(reverse("incidents:detail", args=[incident.pk]))
        # The panel's one query (its 50 newest), besides the "no pending alerts" fact's.
        assert (
            sum(
                'FROM "detection_signal"' in q["sql"] and "LIMIT 50" in q["sql"] for q in ctx.captured_queries
            )
            == 1
        )
        for n in range(1, 60):
            signal(n, incident=incident)
        with django_assert_max_num_queries(len(ctx.captured_queries)):
            response = client.get(reverse("incidents:detail", args=[incident.pk]))
        assert len(signals_panel(response)) == 50

    def test_the_live_poll_swaps_new_signals_in(self, client, viewer, tokens, responder):
        payload = hostile_alertmanager_payload()
        payload["alerts"] = payload["alerts"][1:]
        post = {"content_type": "application/json", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
        assert client.post(reverse("detection:alertmanager"), json.dumps(payload), **post).status_code == 200
        signals_route()
        incident = Incident.objects.get()
        seen = incident.version
        payload["alerts"][0] |= {"fingerprint": "c0ffee0000000003", "startsAt": "2026-01-05T10:05:00Z"}
        assert client.post(reverse("detection:alertmanager"), json.dumps(payload), **post).status_code == 200
        signals_route()
        client.force_login(viewer)
        body = client.get(reverse("incidents:poll", args=[incident.pk]), {"v": seen}).content.decode()
        assert '<section id="incident-signals" class="card" hx-swap-oob="true"' in body
        assert body.count('class="signal signal-firing"') == 2


# --- In a real browser: CSP-clean, and both polls swap -------------------------------------------


@pytest.mark.browser
@pytest.mark.xdist_group("browser")
@pytest.mark.django_db(transaction=True)
def test_board_and_liveness_update_live_in_a_browser(open_session, viewer, responder):
    from playwright.sync_api import expect

    poll_ms = 12_000  # both regions poll every 5 s
    incident = declare(responder)
    service("cdb_risk", core=True, results=TREND_POINTS, state=Health.UP, last_latency_ms=12.0)
    service("cdb_ws", results=5, state=Health.DEGRADED)
    rule("ServiceDown", state=RuleState.FIRING, severity=1)
    signal(
        1,
        incident=incident,
        title="<img src=x onerror=\"document.body.dataset.xss='1'\">",
        summary="<script>document.body.dataset.xss='2'</script>",
        links=["javascript:document.body.dataset.xss='3'", "https://grafana.example/d/cdb"],
    )
    Heartbeat.objects.create(name="health", last_seen=timezone.now())
    session = open_session(viewer)
    page = session.page

    page.goto(BOARD)
    liveness = page.locator("#liveness")
    expect(liveness).to_have_attribute("data-state", "fresh")
    expect(liveness).to_contain_text(re.compile(r"^data \d+ s old$"))
    risk = page.locator('#board tr[data-service="cdb_risk"]')
    expect(risk.locator(".health")).to_have_text("Up")
    expect(risk.locator("svg.trend rect")).to_have_count(TREND_POINTS)
    expect(page.locator("#board-signals a[href='https://grafana.example/d/cdb']")).to_have_count(1)

    # The poll brings the new state in; the jobs stopping turns the top bar into a warning.
    MonitoredService.objects.filter(name="cdb_risk").update(state=Health.DOWN)
    Heartbeat.objects.update(last_seen=timezone.now() - timedelta(minutes=10))
    expect(risk.locator(".health")).to_have_text("Down", timeout=poll_ms)
    expect(liveness).to_have_attribute("data-state", "stale", timeout=poll_ms)
    expect(liveness).to_have_text("⚠ Background jobs stopped: data 10 min old")

    page.goto(reverse("incidents:detail", args=[incident.pk]))
    section = page.locator("#incident-signals")
    expect(section).to_contain_text("<img src=x onerror=")  # shown as text
    expect(section.locator("a")).to_have_count(1)
    expect(page.locator("#liveness")).to_have_attribute("data-state", "stale")

    assert page.evaluate("document.body.dataset.xss") is None
    assert session.problems.all() == []
