"""Webhook deliveries are stored first and routed into incidents by a worker: woken through the real
broker (Redis) right away, or by the periodic sweep when the broker was down. Nothing is lost."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.urls import reverse

from config.celery import app
from detection import tasks
from detection.models import Signal
from detection.services import wake_router as waker
from incidents.models import Incident
from tests import processes
from tests.detection.test_webhooks import TOKEN, alert, am_payload
from tests.test_deploy import _gunicorn

CLOSED_BROKER = "redis://127.0.0.1:1/0"
ROUTING_REDIS_DB = 13  # the wake-up test's own broker database


@pytest.fixture
def tokens(settings: Any) -> None:
    settings.WEBHOOK_TOKENS = {"alertmanager": TOKEN, "grafana": ""}


def deliver(client: Any, *alerts: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        reverse("detection:alertmanager"),
        json.dumps(am_payload(*alerts)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert response.status_code == 200, response.content
    return response.json()


def wait_for(condition: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def broker_contents(url: str) -> str:
    """For the message of a failing test: what the Redis broker database holds (key, type, length)
    and which connections wait on it (a consumer other than the test's worker would show here)."""
    r = redis.Redis.from_url(url, decode_responses=True)
    length = {"list": r.llen, "set": r.scard, "hash": r.hlen, "zset": r.zcard}
    kinds = {str(k): str(r.type(k)) for k in r.scan_iter()}
    keys = {k: f"{t} of {length[t](k)}" for k, t in kinds.items() if t in length}
    db = str(r.connection_pool.connection_kwargs.get("db", 0))
    waiting = [f"{c['addr']} {c['cmd']} age {c['age']}" for c in r.client_list() if str(c["db"]) == db]
    return f"keys {keys}; connections on db {db}: {waiting}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_woken_by_the_delivery_routes_it(tmp_path: Path) -> None:
    """Production's shape, all real processes: Alertmanager posts to gunicorn, whose wake-up wakes a
    Celery worker on a broker database of the test's own; no beat runs, so only that wake-up can
    make the worker route the stored alerts."""
    broker = processes.private_broker_url(ROUTING_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    logs = (tmp_path / "web.log", tmp_path / "worker.log")
    worker = processes.start_celery(
        processes.worker_args("router"), env=processes.console_env(broker), log=logs[1]
    )
    env = {"CELERY_BROKER_URL": broker, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN, "WAKE_WORKERS": "true"}
    try:
        with _gunicorn(logs[0], **env) as port:
            url = f"http://127.0.0.1:{port}{reverse('detection:alertmanager')}"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            body = am_payload(alert(fp="w1"), alert(fp="w2", labels={"instance": "b"}))
            answer = httpx.post(url, json=body, headers=headers, timeout=30)
            assert answer.status_code == 200 and answer.json()["new"] == 2, answer.text
            # Generous under load (a worker process starts in seconds): the wait ends once they are routed.
            routed = wait_for(lambda: not Signal.objects.filter(routed_at__isnull=True).exists(), 60)
            assert routed, "\n".join(
                [f"not routed; broker {broker}: {broker_contents(broker)}"]
                + [f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs]
            )
            again = httpx.post(url, json=am_payload(alert(fp="w1")), headers=headers, timeout=30)
            assert again.json()["duplicates"] == 1  # wakes nobody: nothing new
    finally:
        processes.stop(worker)
        redis.Redis.from_url(broker).flushdb()
    incident = Incident.objects.get()
    assert set(Signal.objects.values_list("incident_id", flat=True)) == {incident.pk}
    assert incident.events.filter(kind="signal").count() == 2


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_deliveries_are_stored_and_the_sweep_routes_them(
    client: Any, tokens: None, monkeypatch: Any, settings: Any
) -> None:
    settings.WAKE_WORKERS = True
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", 1), timeout=1):
        pass  # nothing listens there
    # Publishing connects through the app's producer pool, made once: a new one on the closed port.
    connect = app.connection_for_write
    monkeypatch.setattr(app, "connection_for_write", lambda url=None, **kw: connect(CLOSED_BROKER, **kw))
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    failed = waker.failed
    assert deliver(client, alert(fp="d1"))["new"] == 1
    assert waker.failed == failed, "the answer came after the broker refused: it waited on the broker"
    # The wake-up, published in the background, fails (redis-py retries a refused connection first).
    assert wait_for(lambda: waker.failed == failed + 1, 30)
    waiting = Signal.objects.get()
    assert waiting.routed_at is None and not Incident.objects.exists()
    monkeypatch.undo()  # the broker is back; beat's next sweep runs the same task
    assert tasks.route_signals() == 1
    assert Signal.objects.get().incident == Incident.objects.get()


def test_the_sweep_is_scheduled(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["detection-route-signals"]
    assert entry["task"] == "detection.tasks.route_signals"
    assert entry["schedule"] == settings.ALERT_ROUTE_SWEEP_SECONDS <= 10


@pytest.mark.django_db
def test_the_board_warns_about_alerts_waiting_for_a_worker(client: Any, tokens: None, viewer: Any) -> None:
    deliver(client, alert(fp="b1"), alert(fp="b2", labels={"instance": "b"}))
    client.force_login(viewer)
    body = client.get(reverse("detection:board")).content.decode()
    assert 'id="signals-waiting"' in body and "2 alerts stored but not yet in an incident" in body
    tasks.route_signals()
    assert 'id="signals-waiting"' not in client.get(reverse("detection:board")).content.decode()


@pytest.mark.django_db
def test_one_batch_keeps_each_groups_order_declare_raise_resolve(client: Any, tokens: None) -> None:
    """Stored together, routed in one pass: the incident opens at the first alert's severity with
    the alerts behind it, is raised by a more severe one, and the resolution comes last."""
    from detection.services import signals_route
    from incidents.models import EventKind

    deliver(
        client,
        alert(fp="a", severity="warning"),
        alert(fp="b", severity="warning", labels={"instance": "b"}),
        alert(fp="c", severity="critical", labels={"instance": "c"}),
        alert(fp="a", severity="warning", status="resolved"),
    )
    assert signals_route() == 4
    incident = Incident.objects.get()
    assert incident.severity == 1
    events = list(incident.events.order_by("id").values_list("kind", "message"))
    assert [kind for kind, _ in events] == [
        EventKind.DECLARED,
        EventKind.SIGNAL,  # a: opened it
        EventKind.SIGNAL,  # b: joined in the same INSERT
        EventKind.SIGNAL,  # c: joined ...
        EventKind.SEVERITY_CHANGED,  # ... and raised it
        EventKind.SIGNAL,  # a resolved
    ]
    assert events[0][1].startswith("ServiceDown") and events[-1][1].startswith("Resolved")
    assert incident.version == incident.events.order_by("-id").values_list("pk", flat=True)[0]


@pytest.mark.django_db
def test_a_closed_incident_keeps_its_signals_off_its_timeline(client: Any, tokens: None) -> None:
    from detection.services import signals_route
    from incidents import services
    from incidents.models import Status
    from tests.incidents.factories import make_user

    deliver(client, alert(fp="x"))
    signals_route()
    incident = Incident.objects.get()
    lead = make_user(role="lead")
    services.incident_acknowledge(incident=incident, actor=lead)
    services.incident_assign_commander(incident=incident, actor=lead, commander=lead)
    for status in (Status.RESOLVED, Status.CLOSED):
        services.incident_change_status(incident=incident, actor=lead, to_status=status, override_reason="ok")
    events = incident.events.count()
    deliver(client, alert(fp="x", status="resolved"), alert(fp="y", labels={"instance": "y"}))
    assert signals_route() == 2
    incident.refresh_from_db()
    assert incident.status == Status.CLOSED and incident.events.count() == events
    resolved = Signal.objects.get(fingerprint="x", status="resolved")
    assert resolved.incident == incident and resolved.routed_at is not None
    reopened = Signal.objects.get(fingerprint="y").incident
    assert reopened is not None and reopened != incident and reopened.status == Status.TRIAGE
