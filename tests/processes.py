"""Real Celery workers and beat for tests whose behaviour crosses the broker: started against the
test database and a broker of the test's own, each in its own process group, stopped (or killed)
as a whole so nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection


def private_broker_url(db: int) -> str:
    """The configured Redis (make test uses Redis), with a database number of the test's own."""
    configured = settings.CELERY_BROKER_URL
    base = configured if configured.startswith("redis://") else "redis://127.0.0.1:6379/0"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def console_env(broker: str, **extra: str) -> dict[str, str]:
    """The environment of a console process sharing this test's PostgreSQL database."""
    db = connection.settings_dict
    assert db["ENGINE"] == "django.db.backends.postgresql", "worker and test share PostgreSQL"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return env | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
        "LOG_LEVEL": "INFO",
        **extra,
    }


def start_celery(args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    celery = Path(sys.executable).with_name("celery")
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [str(celery), "-A", "config", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, nothing orphaned
        )


def worker_args(name: str) -> list[str]:
    return [
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        f"--hostname={name}-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group: a worker dying mid-task, as a crash or an OOM kill does."""
    if group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (a warm shutdown), SIGKILL what is left after 15 s."""
    pgid = proc.pid
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)


def wait_until(condition: Any, *, timeout: float, what: str, logs: tuple[Path, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            text = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists()
            )
            raise AssertionError(f"{what} within {timeout:g} s\n{text}")
        time.sleep(0.05)


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the machine's shared one), which the
    test may stop and start again on the same port: a broker outage."""

    def __init__(self, directory: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import shutil

        import redis

        server = shutil.which("redis-server")
        assert server, "redis-server is not installed"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [server, *args, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        wait_until(lambda: _pings(client), timeout=10, what="the private redis-server did not answer")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
