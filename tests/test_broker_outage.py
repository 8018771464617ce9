"""A Redis outage never stops routing for good. The production process set (the Procfile's web,
worker and beat, under scripts/supervise.py as systemd runs them: restarted whenever they exit) runs
against a Redis of this test's own, under a steady load of webhook deliveries; that Redis is stopped
(killed, or shut down) and started again, repeatedly. After each outage every alert the web answered
200 for is stored and routed into an incident, by a worker that stayed up or was started again."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from detection.models import Signal
from killswitch.backends import FileBackend
from tests.test_deploy import _free_port
from tests.test_make_run import Output

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "outage-webhook-token-0123456789"
OUTAGES = 6
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = pytest.mark.django_db(transaction=True)


class Redis:
    """A redis-server of the test's own on a free port, stopped and started on that same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self.answers():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, how: int) -> None:
        assert self.process is not None
        self.process.send_signal(how)  # SIGKILL: a crash; SIGTERM: a shutdown
        self.process.wait(20)


class Load:
    """Webhook deliveries of five new alerts each, one after another, until paused."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted = 0  # alerts answered 200: each must end up routed
        self.refused: list[int] = []
        self.running = threading.Event()
        self.done = threading.Event()
        self.idle = threading.Event()
        self._fingerprints = itertools.count()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.done.is_set():
                if not self.running.is_set():
                    self.idle.set()
                    self.running.wait(0.2)
                    continue
                self.idle.clear()
                alerts = [self._alert(next(self._fingerprints)) for _ in range(5)]
                payload = {"version": "4", "status": "firing", "alerts": alerts}
                answer = http.post(self.url, json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
                if answer.status_code == 200:
                    self.accepted += len(alerts)
                else:
                    self.refused.append(answer.status_code)
                time.sleep(0.05)
        self.idle.set()

    @staticmethod
    def _alert(n: int) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": {"alertname": f"Outage{n % 7}", "severity": "warning", "job": "cdb_risk"},
            "annotations": {"summary": f"alert {n}"},
            "startsAt": "2026-11-26T21:00:00Z",
            "fingerprint": f"outage-{n}",
        }

    def pause(self) -> None:
        self.running.clear()
        assert self.idle.wait(60), "a delivery hung"


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Redis, Output, str]]:
    redis = Redis(tmp_path)
    redis.start()
    port = _free_port()
    # The production Procfile, with beat's schedule in this test's directory.
    procfile = tmp_path / "Procfile"
    schedule = tmp_path / "celerybeat-schedule"
    procfile.write_text((ROOT / "Procfile").read_text().replace("var/celerybeat-schedule", str(schedule)))
    states = {name: tmp_path / name / ".cdb_kill_switch.state" for name in ("production", "drill")}
    for path in states.values():
        path.parent.mkdir()
        FileBackend(path).deactivate(operator="setup", justification="initial state for the test")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PROMETHEUS_MULTIPROC"))}
    env |= {
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
        "DEBUG": "false",
        "SECRET_KEY": "outage-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "AUDIT_HMAC_KEY": "outage-test-audit-key-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "4",
        "WEB_ACCESS_LOG": "",
        "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
        "ALERT_ROUTE_SWEEP_SECONDS": "2",
        "KILLSWITCH_TARGETS": ";".join(f"{name}=file:{path}" for name, path in states.items()),
        "KILLSWITCH_RECONCILE_SECONDS": "5",
        "PROMETHEUS_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    supervisor = subprocess.Popen(
        [sys.executable, "scripts/supervise.py", "--url", f"http://127.0.0.1:{port}/login/", str(procfile)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    output = Output(supervisor)
    try:
        output.wait_for(r"^The console is up", seconds=300)
        yield redis, output, f"http://127.0.0.1:{port}/detection/webhooks/alertmanager/"
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(supervisor.pid, signal.SIGKILL)
                supervisor.wait(10)
        for pid in re.findall(r"\| started(?: again)? \(pid (\d+)\)", output.text()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
        if redis.process is not None and redis.process.poll() is None:
            redis.stop(signal.SIGKILL)


def test_routing_resumes_after_every_redis_outage(stack: tuple[Redis, Output, str]) -> None:
    redis, output, webhook = stack
    load = Load(webhook)
    load.running.set()
    load.thread.start()
    try:
        for outage in range(1, OUTAGES + 1):
            time.sleep(2)  # deliveries wake the worker: tasks are in flight when Redis goes
            redis.stop(signal.SIGKILL if outage % 2 else signal.SIGTERM)
            time.sleep(3)  # deliveries go on: stored, waiting for a worker
            redis.start()
            load.pause()
            deadline = time.monotonic() + 120
            while True:
                stored = Signal.objects.count()
                waiting = Signal.objects.filter(routed_at__isnull=True).count()
                if stored == load.accepted and waiting == 0:
                    break
                assert time.monotonic() < deadline, (
                    f"outage {outage}: {load.accepted} alerts accepted, {stored} stored, {waiting} not "
                    f"routed two minutes after Redis came back\n" + "\n".join(output.lines[-80:])
                )
                time.sleep(0.5)
            load.running.set()
    finally:
        load.done.set()
        load.running.set()
        load.thread.join(60)
    assert load.accepted > 0 and not load.refused, load.refused
    assert not Signal.objects.filter(incident__isnull=True).exists()
    # The worker is alive: the one started last still runs (restarts, if any, are in the output).
    [*_, worker] = re.findall(r"worker +\| started(?: again)? \(pid (\d+)\)", output.text())
    os.kill(int(worker), 0)
    restarts = len(re.findall(r"worker +\| exited", output.text()))
    print(
        f"{OUTAGES} Redis outages, {load.accepted} alerts routed, the worker started again {restarts} times"
    )
