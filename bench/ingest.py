"""Ingest benchmark: Alertmanager deliveries into the webhook, over HTTP, served by gunicorn on PostgreSQL.

Run from the repository root:  .venv/bin/python bench/ingest.py [--runs N --workers N --threads N ...]

It uses its own PostgreSQL database (DATABASE_URL with the name replaced by cdb_console_bench_ingest,
dropped, recreated, migrated and loaded with the playbook on every run), its own Redis database
(CELERY_BROKER_URL if it names a Redis, else redis://127.0.0.1:6379/12, flushed first), and starts
gunicorn itself on free 127.0.0.1 ports with the console's own config/gunicorn.py, plus one Celery
worker (solo pool) that routes the stored alerts into incidents, as in production. 20 concurrent
senders (threads with one keep-alive connection each, through a minimal HTTP/1.1 client: httpx cost
over ten times as much CPU per request, which the senders took from the server on this 2-CPU
machine) deliver 5,000 Alertmanager alerts with 500 distinct fingerprints in three phases:

  floor    5,000 requests of one alert each to a bare Django view that inserts one row per request
           (bench/floor.py: the same project, settings and middleware, only the URLconf swapped)
  single   5,000 requests of one alert each to POST /detection/webhooks/alertmanager/
  grouped  100 requests of 50 alerts each to the same endpoint, as Alertmanager batches them

The three phases run --runs times (default 3) in turn; the targets are judged on the median run's
ratios and p99, because this machine's timings vary by tens of percent from one minute to the next.

The alerts are the upstream CDB rules (prometheus/alerts.yml) on the upstream scrape jobs
(prometheus/prometheus.yml): 10 alert rules x 10 jobs x 5 replicas = 500 fingerprints, computed as
Alertmanager computes them, with a stable startsAt each, so every later delivery of a fingerprint is a
real duplicate. The console groups them by alertname + service (job stands in) into 100 incidents.
Deliveries come in 10 rounds (Alertmanager's re-notifications): round 1 holds every alert's first
delivery, rounds 2-10 repeat them, each round in its own shuffled order. Grouped, a request is one
Alertmanager notification: the upstream route groups by ['alertname', 'severity', 'service'] and the
rules carry no `service` label, so one notification is one rule's 50 alerts across the 10 jobs.

Each phase starts from empty tables (after an untimed warm-up of every connection before the first
run, then TRUNCATE). It is timed from the first request sent to the last alert visible on its
incident ("visible s": the webhook answers once an alert is stored, and the worker routes it; the
"answered s" column is the time to the last answer). Then it is checked in the database: an alert
counts only when it was answered 2xx, and the phase only counts when every distinct alert is stored
exactly once, attached to its group's incident, with one incident per group. Any non-2xx answer or
transport error is reported. Latency is per request (client side: send → full answer); "to
incident" is each new alert's time from stored to routed.

Server: gunicorn gthread, 4 workers x 4 threads by default (2 processes per CPU so one blocked on the
GIL or the database does not idle a CPU; threads overlap database waits and keep the senders'
connections alive, where sync workers close each one), keep-alive 5 s, DEBUG=false, CONN_MAX_AGE=600
with the project's health checks; the floor and the webhook run on the very same flags (--workers,
--threads, --worker-class change both). Senders, gunicorn, the worker and PostgreSQL share this
machine's CPUs, so a second table shows where the CPU went per phase (from /proc): the senders,
gunicorn, the routing worker, this database's PostgreSQL backends and background writers, everything
else ("other": a busy machine makes the wall-time figures unreliable, and the run says so), and idle.
Server CPU per alert is the steadier figure when the machine is shared. A third table splits round 1
(the first deliveries: new signals, wake-ups) from the re-deliveries.
The last line is `targets met` or `targets missed: <which>`; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

# Run as a script (python bench/x.py): the repository root must come first on the path.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import bench_database_urls, recreate_database, setup_django  # noqa: E402
from bench.floor import FLOOR_DDL, FLOOR_PATH, FLOOR_TABLE  # noqa: E402

BENCH_DB = "cdb_console_bench_ingest"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"  # unless CELERY_BROKER_URL names a Redis
TOKEN = "bench-alertmanager-token-0123456789"
SECRET_KEY = "bench-ingest-secret-key-not-for-production-0123456789abcdef"
WEBHOOK_PATH = "/detection/webhooks/alertmanager/"

RUNS = 3  # the machine is shared and noisy: each phase runs this often, the median run is judged
SENDERS = 20
ROUNDS = 10  # deliveries per fingerprint: 500 fingerprints x 10 = 5,000 alerts
GROUP_SIZE = 50  # alerts per grouped request (one rule across all jobs and replicas)
REPLICAS = 5
WARMUP_PER_SENDER = 10  # untimed requests per sender before each server's first phase
SEED = 20_240_601

# Targets (the issue's).
SINGLE_SHARE = 0.60  # one-alert requests: at least 60 % of the floor's alerts/s ...
SINGLE_P99_MS = 100.0  # ... with p99 at most 100 ms
GROUPED_FACTOR = 5.0  # grouped requests: at least 5x the floor's alerts/s
NOISE_SHARE = 0.10  # other processes above this share of the CPUs during a phase: warn, figures unreliable

# Server: the same for the floor and the webhook. 2 CPUs here, shared with PostgreSQL and the senders.
DEFAULT_WORKERS = 4
DEFAULT_THREADS = 4
DEFAULT_WORKER_CLASS = "gthread"  # keeps the senders' connections alive (sync closes each one)

# Upstream rules (prometheus/alerts.yml): name, severity label, summary and description templates.
RULES = [
    ("ServiceDown", "critical", "Service {job} is down", "{instance} has been down for more than 1 minute."),
    (
        "CircuitBreakerTriggered",
        "critical",
        "Circuit Breaker triggered on {instance}",
        "circuit_breaker_active=1 on {instance}. Trading halted.",
    ),
    (
        "MinimalServiceDown",
        "high",
        "Minimal service {job} is down",
        "{instance} has been down for more than 2 minutes.",
    ),
    ("HighCPUUsage", "warning", "High CPU usage on {job}", "Container CPU usage is 93%."),
    ("HighMemoryUsage", "warning", "High memory usage on {job}", "Container memory usage is 91%."),
    ("ContainerRestarting", "warning", "Container {job} restarting", "{instance} restarted 4 times in 15m."),
    ("PrometheusTargetDown", "warning", "Target {instance} is down", "Prometheus cannot scrape {job}."),
    (
        "SoakTest_ServiceRestartLoop",
        "critical",
        "Soak test: {job} in a restart loop",
        "{instance} restarted more than 3 times in 10 minutes.",
    ),
    (
        "SoakTest_MemoryOOM",
        "critical",
        "Soak test: {job} OOM-killed",
        "{instance} was killed by the OOM killer.",
    ),
    (
        "SoakTest_HighMemoryUsage",
        "high",
        "Soak test: high memory on {job}",
        "{instance} memory above 85% for 5 minutes.",
    ),
]
# Upstream scrape jobs (prometheus/prometheus.yml): job and target host:port.
JOBS = [
    ("cdb_execution", "cdb_execution", 8003),
    ("cdb_signal", "cdb_signal", 8005),
    ("cdb_candles", "cdb_candles", 8007),
    ("cdb_db_writer", "cdb_db_writer", 8010),
    ("cdb_risk", "cdb_risk", 8002),
    ("cdb_ws", "cdb_ws", 8000),
    ("cdb_postgres", "cdb_postgres_exporter", 9187),
    ("cdb_redis", "cdb_redis_exporter", 9121),
    ("cdb_cadvisor", "cdb_cadvisor", 8080),
    ("prometheus", "prometheus", 9090),
]
FINGERPRINTS = len(RULES) * len(JOBS) * REPLICAS
GROUPS = len(RULES) * len(JOBS)  # the console's groups (alertname + service/job): one incident each
ALERTS = FINGERPRINTS * ROUNDS


# --- Alerts and payloads ------------------------------------------------------------------------


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint: FNV-1a 64 over the sorted label pairs, as 16 hex digits."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_alerts(now: datetime, namespace: str = "prod") -> list[dict[str, Any]]:
    """The 500 alerts, ordered rule by rule (each rule's 50 are one Alertmanager notification)."""
    alerts = []
    for r, (name, severity, summary, description) in enumerate(RULES):
        for j, (job, host, port) in enumerate(JOBS):
            for replica in range(1, REPLICAS + 1):
                labels = {
                    "alertname": name,
                    "severity": severity,
                    "job": job,
                    "instance": f"{host}-{replica}:{port}",
                    "env": namespace,
                }
                n = (r * len(JOBS) + j) * REPLICAS + replica
                alerts.append(
                    {
                        "status": "firing",
                        "labels": labels,
                        "annotations": {
                            "summary": summary.format(**labels),
                            "description": description.format(**labels),
                        },
                        # Stable per fingerprint: every re-delivery is a real duplicate.
                        "startsAt": rfc3339(now - timedelta(hours=1) + timedelta(seconds=n)),
                        "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": f"http://prometheus:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{name}%22%7D",
                        "fingerprint": fingerprint(labels),
                    }
                )
    return alerts


def payload(alerts: Sequence[dict[str, Any]]) -> bytes:
    """A webhook v4 body, as Alertmanager sends it (route grouped by alertname, severity, service)."""
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    group_labels = {k: common[k] for k in ("alertname", "severity", "service") if k in common}
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    body = {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "console",
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Request:
    body: bytes
    alerts: int
    first: bool = False  # carries an alert's first delivery (round 1): new signals, maybe an incident


def single_requests(alerts: list[dict[str, Any]], rng: random.Random) -> list[Request]:
    """ROUNDS re-notifications of every alert, one alert per request, each round shuffled."""
    requests: list[Request] = []
    for round_ in range(ROUNDS):
        order = list(alerts)
        rng.shuffle(order)
        requests.extend(Request(payload([a]), 1, first=round_ == 0) for a in order)
    return requests


def grouped_requests(alerts: list[dict[str, Any]], rng: random.Random) -> list[Request]:
    """ROUNDS re-notifications of every rule's group of 50 (sorted within, as Alertmanager sends)."""
    groups = [alerts[i : i + GROUP_SIZE] for i in range(0, len(alerts), GROUP_SIZE)]
    requests: list[Request] = []
    for round_ in range(ROUNDS):
        order = list(groups)
        rng.shuffle(order)
        requests.extend(Request(payload(g), len(g), first=round_ == 0) for g in order)
    return requests


# --- CPU accounting -----------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


PG_BACKGROUND = ("walwriter", "checkpointer", "background writer", "autovacuum", "wal writer")


@dataclass
class CpuSample:
    at: float
    machine_busy: float  # all CPUs, seconds
    client: float
    server: float
    router: float
    postgres: float


def cpu_sample(server_pid: int, router_pid: int | None = None) -> CpuSample:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK  # minus idle and iowait
    server = router = postgres = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        info = _proc_cpu(pid)
        if info is None:
            continue
        ppid, seconds = info
        if server_pid in (pid, ppid):
            server += seconds
            continue
        if router_pid is not None and router_pid in (pid, ppid):
            router += seconds
            continue
        cmd = _cmdline(pid)
        if cmd.startswith("postgres:") and (BENCH_DB in cmd or any(b in cmd for b in PG_BACKGROUND)):
            postgres += seconds
    return CpuSample(time.perf_counter(), busy, time.process_time(), server, router, postgres)


@dataclass
class CpuUse:
    wall: float
    client: float
    server: float
    router: float
    postgres: float
    other: float
    idle: float

    @classmethod
    def between(cls, a: CpuSample, b: CpuSample) -> CpuUse:
        wall = b.at - a.at
        client, server, postgres = b.client - a.client, b.server - a.server, b.postgres - a.postgres
        router = b.router - a.router
        busy = b.machine_busy - a.machine_busy
        cpus = os.cpu_count() or 1
        return cls(
            wall,
            client,
            server,
            router,
            postgres,
            max(0.0, busy - client - server - router - postgres),
            max(0.0, cpus * wall - busy),
        )


# --- Server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    workers: int
    threads: int
    worker_class: str

    def args(self) -> list[str]:
        return [
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
            "--keep-alive",
            "5",
            "--timeout",
            "60",
            "--no-control-socket",
            "--log-level",
            "warning",
        ]

    def describe(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"gunicorn {self.worker_class}, {self.workers} workers{threads}"


def stop_process(process: subprocess.Popen[bytes], log: Any) -> None:
    """Terminate (kill after 30 s) and remove its log file."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()
    Path(log.name).unlink(missing_ok=True)


def server_env(database_url: str, broker_url: str) -> dict[str, str]:
    """Production-like settings for gunicorn and the worker."""
    return {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
        "CONN_MAX_AGE": "600",
        "CELERY_BROKER_URL": broker_url,
        "LOG_LEVEL": "WARNING",
        "WEB_ACCESS_LOG": "",
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """gunicorn serving `app` from the repository root, with production-like environment."""

    def __init__(self, app: str, path: str, config: ServerConfig, database_url: str, broker_url: str) -> None:
        self.path = path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="cdb-bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        env = os.environ | server_env(database_url, broker_url)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "--config",
                "config/gunicorn.py",  # the console's own (its hooks too); the flags below override
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                *config.args(),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                httpx.get(self.base_url + self.path, timeout=2)  # 405 from the view: no database
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not answer within 60 s:\n{self.log_text()}")

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def error_lines(self, limit: int = 6) -> list[str]:
        """The distinct error lines the server logged (why a request got a 5xx), most frequent first."""
        counts: dict[str, int] = {}
        for line in Path(self.log.name).read_text(errors="replace").splitlines():
            if "Error" in line or "error" in line or "Could not" in line:
                counts[line.strip()[:200]] = counts.get(line.strip()[:200], 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [f"{n}x {line}" for line, n in ranked]

    def stop(self) -> None:
        stop_process(self.process, self.log)


class Router:
    """The Celery worker that routes stored signals into incidents (woken by the webhook through Redis)."""

    def __init__(self, database_url: str, broker_url: str) -> None:
        import redis

        redis.Redis.from_url(broker_url).flushdb()  # no stale wake-ups from an earlier run
        self.log = tempfile.NamedTemporaryFile(prefix="cdb-bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
        env = os.environ | server_env(database_url, broker_url)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "celery"),
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        stop_process(self.process, self.log)


def wait_routed(timeout: float = 120.0) -> float:
    """Seconds until no stored signal waits for routing (polled every 5 ms)."""
    from django.db import connection

    from detection.models import Signal

    began = time.perf_counter()
    sql = f"SELECT EXISTS (SELECT 1 FROM {Signal._meta.db_table} WHERE routed_at IS NULL)"  # noqa: S608
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql)
            if not cursor.fetchone()[0]:
                return time.perf_counter() - began
            if time.perf_counter() - began > timeout:
                raise SystemExit(
                    f"signals still waiting for routing after {timeout:.0f} s: is the worker up?"
                )
            time.sleep(0.005)


# --- Senders ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    latency_ms: float
    status: int  # 0: transport error
    alerts: int
    body: bytes
    first: bool


@dataclass
class Phase:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0  # first request sent → last alert visible on its incident
    answered: float = 0.0  # first request sent → last answer received
    to_incident_ms: list[float] = field(default_factory=list)  # per new alert: received → routed
    cpu: CpuUse | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if 200 <= o.status < 300]

    @property
    def errors(self) -> int:
        return len(self.outcomes) - len(self.ok)

    @property
    def alerts(self) -> int:
        """Alerts answered 2xx: the only ones that count."""
        return sum(o.alerts for o in self.ok)

    def server_cpu_per_alert(self) -> float:
        """µs of gunicorn + router + PostgreSQL CPU per counted alert."""
        if self.cpu is None or not self.alerts:
            return float("nan")
        return (self.cpu.server + self.cpu.router + self.cpu.postgres) / self.alerts * 1e6

    @property
    def rate(self) -> float:
        return self.alerts / self.seconds if self.seconds else 0.0

    def percentile(self, p: int, first: bool | None = None) -> float:
        times = [o.latency_ms for o in self.outcomes if first is None or o.first == first]
        if len(times) < 2:
            return times[0] if times else float("nan")
        if p == 50:
            return statistics.median(times)
        return statistics.quantiles(times, n=100, method="inclusive")[p - 1]

    def error_summary(self) -> str:
        counts: dict[int, int] = {}
        for o in self.outcomes:
            if not 200 <= o.status < 300:
                counts[o.status] = counts.get(o.status, 0) + 1
        return ", ".join(f"{n}x {'transport error' if s == 0 else s}" for s, n in sorted(counts.items()))


class Connection:
    """A minimal HTTP/1.1 keep-alive client for one connection: each request is one prepared
    `sendall`, each answer is read by Content-Length. http.client cost about three times the CPU per
    request, and these senders share the 2 CPUs with the server they measure."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.address = (host, port)
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def post(self, body: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._read()
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in lines[1:])
        length = int(next(v for k, v in fields.items() if k.lower() == "content-length"))
        while len(self.buffer) < length:
            self._read()
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        if any(k.lower() == "connection" and v.strip().lower() == "close" for k, v in fields.items()):
            self.close()
        return status, answer

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk


class Senders:
    """SENDERS threads with one keep-alive connection each, pulling requests from a shared list."""

    def __init__(self, base_url: str, path: str, count: int) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.clients = [Connection(host, int(port), path) for _ in range(count)]

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def run(self, requests: Sequence[Request]) -> tuple[list[Outcome], float]:
        """Send every request; (outcomes, seconds from the first send to the last answer)."""
        for client in self.clients:
            client.close()  # fresh connections: the server drops idle ones (keep-alive 5 s) between phases
        lock = threading.Lock()
        work: Iterator[Request] = iter(requests)
        results: list[list[Outcome]] = [[] for _ in self.clients]
        start = threading.Barrier(len(self.clients) + 1)

        def next_request() -> Request | None:
            with lock:
                return next(work, None)

        def sender(index: int) -> None:
            client, mine = self.clients[index], results[index]
            start.wait()
            while (request := next_request()) is not None:
                began = time.perf_counter()
                try:
                    status, body = client.post(request.body)
                except (OSError, ValueError, StopIteration) as exc:
                    client.close()
                    status, body = 0, repr(exc).encode()
                mine.append(
                    Outcome((time.perf_counter() - began) * 1000, status, request.alerts, body, request.first)
                )

        threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(len(self.clients))]
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - began
        return [o for r in results for o in r], seconds


def run_phase(
    name: str,
    senders: Senders,
    requests: Sequence[Request],
    server: Server,
    router: Router | None = None,
    warmup: Sequence[Request] = (),
) -> Phase:
    if warmup:
        outcomes, _ = senders.run(warmup)
        bad = [o for o in outcomes if not 200 <= o.status < 300]
        if bad:
            raise SystemExit(f"{name}: warm-up failed: {bad[0].status} {bad[0].body[:300]!r}")
    if router:
        wait_routed()
    reset_tables()
    phase = Phase(name)
    pids = (server.process.pid, router.process.pid if router else None)
    before = cpu_sample(*pids)
    phase.outcomes, phase.answered = senders.run(requests)
    # An alert counts once its incident is committed and visible: the phase ends when nothing waits.
    phase.seconds = phase.answered + (wait_routed() if router else 0.0)
    phase.cpu = CpuUse.between(before, cpu_sample(*pids))
    return phase


# --- Database checks ----------------------------------------------------------------------------


def reset_tables() -> None:
    """Empty every table a phase writes, so each phase starts equal (sequences too)."""
    from django.db import connection

    from detection.models import Signal, SignalGroup
    from incidents.models import Incident, IncidentChecklistItem, TimelineEvent

    tables = [m._meta.db_table for m in (Signal, SignalGroup, TimelineEvent, IncidentChecklistItem, Incident)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}, {FLOOR_TABLE} RESTART IDENTITY CASCADE")


def check_floor(phase: Phase) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {FLOOR_TABLE}")  # noqa: S608
        rows = cursor.fetchone()[0]
    if rows != len(phase.ok):
        phase.problems.append(f"{rows} rows committed for {len(phase.ok)} 2xx answers")


def check_ingest(phase: Phase) -> None:
    """Every distinct alert stored once, on its group's incident; one incident per group."""
    from django.db import connection

    from detection.models import Signal, SignalGroup
    from incidents.models import EventKind, Incident, TimelineEvent

    signals = Signal.objects.count()
    phase.to_incident_ms = [
        (routed - received).total_seconds() * 1000
        for received, routed in Signal.objects.values_list("received_at", "routed_at")
        if routed is not None
    ]
    distinct = Signal.objects.values("fingerprint").distinct().count()
    orphans = Signal.objects.filter(incident__isnull=True).count()
    groups = SignalGroup.objects.count()
    empty_groups = SignalGroup.objects.filter(incident__isnull=True).count()
    incidents = Incident.objects.count()
    declared = TimelineEvent.objects.filter(kind=EventKind.DECLARED).count()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {Signal._meta.db_table} s "  # noqa: S608
            f"JOIN {SignalGroup._meta.db_table} g ON g.key = s.group_key "
            "WHERE s.incident_id IS DISTINCT FROM g.incident_id"
        )
        misplaced = cursor.fetchone()[0]
    expected = {
        "signals": (signals, FINGERPRINTS),
        "distinct fingerprints": (distinct, FINGERPRINTS),
        "signals without incident": (orphans, 0),
        "signals not on their group's incident": (misplaced, 0),
        "groups": (groups, GROUPS),
        "groups without incident": (empty_groups, 0),
        "incidents": (incidents, GROUPS),
        "declarations": (declared, GROUPS),
    }
    if not phase.errors:
        answers = [json.loads(o.body) for o in phase.ok]
        expected["answered new"] = (sum(a["new"] for a in answers), FINGERPRINTS)
        expected["answered duplicates"] = (sum(a["duplicates"] for a in answers), ALERTS - FINGERPRINTS)
    for what, (got, want) in expected.items():
        if got != want:
            phase.problems.append(f"{what} {got}, expected {want}")


# --- Output -------------------------------------------------------------------------------------


def print_table(header: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        return " | ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def _quantile(values: list[float], p: int) -> str:
    if len(values) < 2:
        return "-"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[p - 1]:.0f}"


def print_results(phases: list[Phase]) -> None:
    print_table(
        [
            "phase",
            "requests",
            "alerts",
            "answered s",
            "visible s",
            "alerts/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "to incident p50/p99 ms",
        ],
        [
            [
                p.name,
                f"{len(p.outcomes):,}",
                f"{p.alerts:,}",
                f"{p.answered:.2f}",
                f"{p.seconds:.2f}",
                f"{p.rate:,.0f}",
                f"{p.percentile(50):.1f}",
                f"{p.percentile(99):.1f}",
                str(p.errors),
                f"{_quantile(p.to_incident_ms, 50)} / {_quantile(p.to_incident_ms, 99)}"
                if p.to_incident_ms
                else "-",
            ]
            for p in phases
        ],
        right=set(range(1, 10)),
    )


def print_split(phases: list[Phase]) -> None:
    """Latency of round 1 (first deliveries: new signals, new incidents) apart from the re-deliveries."""
    rows = []
    for p in phases:
        row = [p.name]
        for first in (True, False):
            n = sum(1 for o in p.outcomes if o.first == first)
            row += [f"{n:,}", f"{p.percentile(50, first):.1f}", f"{p.percentile(99, first):.1f}"]
        rows.append(row)
    print_table(
        ["latency by round", "round 1 req", "p50 ms", "p99 ms", "rounds 2-10 req", "p50 ms", "p99 ms"],
        rows,
        right=set(range(1, 7)),
    )


def print_cpu(phases: list[Phase]) -> None:
    rows = []
    for p in phases:
        c = p.cpu
        assert c is not None
        per = p.alerts or 1
        rows.append(
            [
                p.name,
                f"{c.wall:.2f}",
                f"{c.client:.2f}",
                f"{c.server:.2f}",
                f"{c.router:.2f}",
                f"{c.postgres:.2f}",
                f"{c.other:.2f}",
                f"{c.idle:.2f}",
                f"{c.server / per * 1e6:,.0f}",
                f"{c.router / per * 1e6:,.0f}",
                f"{c.postgres / per * 1e6:,.0f}",
            ]
        )
    print_table(
        [
            "CPU seconds",
            "wall",
            "senders",
            "gunicorn",
            "router",
            "postgres",
            "other",
            "idle",
            "gunicorn µs/alert",
            "router µs/alert",
            "postgres µs/alert",
        ],
        rows,
        right=set(range(1, 11)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--worker-class", default=DEFAULT_WORKER_CLASS, choices=["gthread", "sync"])
    parser.add_argument(
        "--runs", type=int, default=RUNS, help="repetitions of the three phases (median judged)"
    )
    args = parser.parse_args()
    config = ServerConfig(args.workers, args.threads, args.worker_class)

    database_url, maintenance_url = bench_database_urls(BENCH_DB, "bench/ingest.py")
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not broker_url.startswith("redis://"):
        broker_url = DEFAULT_BROKER_URL
    started = time.perf_counter()
    recreate_database(maintenance_url, BENCH_DB)
    setup_django(database_url, ALERTMANAGER_WEBHOOK_TOKEN=TOKEN, SECRET_KEY=SECRET_KEY)

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    call_command("load_playbook", stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_DDL)
        cursor.execute("SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')")
        sync_commit, lock_timeout = cursor.fetchone()
    print(f"database {BENCH_DB} created, migrated, playbook loaded in {time.perf_counter() - started:.1f} s")

    rng = random.Random(SEED)
    now = datetime.now(UTC)
    alerts = make_alerts(now)
    if len({a["fingerprint"] for a in alerts}) != FINGERPRINTS:
        raise SystemExit("fingerprint collision in the generated alerts")
    single = single_requests(alerts, rng)
    grouped = grouped_requests(alerts, rng)
    warm_alerts = make_alerts(now, namespace="warmup")
    warmup = [Request(payload([a]), 1) for a in rng.sample(warm_alerts, SENDERS * WARMUP_PER_SENDER)]
    print(
        f"{ALERTS:,} deliveries of {FINGERPRINTS} distinct alerts ({len(RULES)} rules x {len(JOBS)} jobs x "
        f"{REPLICAS} replicas) in {ROUNDS} rounds → {GROUPS} groups/incidents; "
        f"{SENDERS} concurrent senders (threads, one keep-alive connection each)"
    )
    print(
        f"server: {config.describe()} on 127.0.0.1, the same flags for the floor and the webhook; "
        f"DEBUG=false, CONN_MAX_AGE=600 (+ health checks); PostgreSQL synchronous_commit={sync_commit}, "
        f"lock_timeout={lock_timeout} (the project's)"
    )
    print(
        f"floor: bench/floor.py (config.settings and its {len(settings.MIDDLEWARE)} middleware, only the "
        "URLconf swapped), one INSERT per request in autocommit"
    )
    print(
        f"routing: one Celery worker (solo pool) on {broker_url.rsplit('@', 1)[-1]}, woken by the webhook; "
        "its CPU counts as the server's"
    )
    print(
        f"each server gets {SENDERS * WARMUP_PER_SENDER} untimed warm-up requests first; every phase starts "
        "on emptied tables; alerts/s counts to the last alert visible on its incident\n"
    )

    load_before = os.getloadavg()
    phases: list[Phase] = []  # run by run: floor, single, grouped
    server_errors: list[str] = []
    # Both servers and the router stay up for all runs; the runs alternate between them.
    router = Router(database_url, broker_url)
    floor_server = Server("bench.floor:application()", "/" + FLOOR_PATH, config, database_url, broker_url)
    server = Server("config.wsgi:application", WEBHOOK_PATH, config, database_url, broker_url)
    floor_senders = Senders(floor_server.base_url, floor_server.path, SENDERS)
    senders = Senders(server.base_url, server.path, SENDERS)
    try:
        for run in range(1, args.runs + 1):
            first = run == 1
            phase = run_phase(
                f"floor #{run}", floor_senders, single, floor_server, warmup=warmup if first else ()
            )
            check_floor(phase)
            phases.append(phase)
            phase = run_phase(f"single #{run}", senders, single, server, router, warmup if first else ())
            check_ingest(phase)
            phases.append(phase)
            phase = run_phase(f"grouped #{run}", senders, grouped, server, router)
            check_ingest(phase)
            phases.append(phase)
        server_errors = server.error_lines()
    finally:
        floor_senders.close()
        senders.close()
        floor_server.stop()
        server.stop()
        router.stop()
    load_after = os.getloadavg()

    print("floor: 1 row/request; single: 1 alert/request; grouped: 50 alerts/request\n")
    print_results(phases)
    print()
    print_split(phases)
    print()
    print_cpu(phases)
    runs = [phases[i : i + 3] for i in range(0, len(phases), 3)]
    # Judged on the median run: each run's ratios compare phases measured minutes apart at most.
    single_share = statistics.median(one.rate / floor.rate for floor, one, _ in runs)
    grouped_factor = statistics.median(many.rate / floor.rate for floor, _, many in runs)
    single_p99 = statistics.median(one.percentile(99) for _, one, _ in runs)
    floor_p99 = statistics.median(floor.percentile(99) for floor, _, _ in runs)
    print(
        f"\nmedians of {len(runs)} runs: single / floor alerts/s {single_share:.0%} "
        f"(target ≥ {SINGLE_SHARE:.0%}); "
        f"single p99 {single_p99:.1f} ms (target ≤ {SINGLE_P99_MS:g} ms; the floor's own p99 "
        f"{floor_p99:.1f} ms); grouped / floor alerts/s {grouped_factor:.1f}x (target ≥ {GROUPED_FACTOR:g}x)"
    )
    cpu = [[p.server_cpu_per_alert() for p in run] for run in runs]
    floor_cpu, one_cpu, many_cpu = (statistics.median(c[i] for c in cpu) for i in range(3))
    print(
        "server CPU per alert, median (gunicorn + router + PostgreSQL; steadier than wall time on a busy "
        f"machine, and without the senders' share): floor {floor_cpu:,.0f} µs, single {one_cpu:,.0f} µs "
        f"({floor_cpu / one_cpu:.0%} of the floor's rate), grouped {many_cpu:,.0f} µs "
        f"({floor_cpu / many_cpu:.1f}x the floor's rate)"
    )
    print(
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"(1/5/15 min after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}) on "
        f"{os.cpu_count()} CPUs; senders, gunicorn and PostgreSQL share them"
    )
    busy = [(p.name, p.cpu.other / (p.cpu.wall * (os.cpu_count() or 1))) for p in phases if p.cpu]
    noisy = [f"{name} {share:.0%}" for name, share in busy if share > NOISE_SHARE]
    if noisy:
        print(
            "WARNING: other processes took a share of the CPUs during "
            + ", ".join(noisy)
            + ": alerts/s, latencies and their ratios are unreliable in this run; run it again"
        )

    if server_errors:
        print("webhook server log, error lines:\n  " + "\n  ".join(server_errors))

    missed = []
    for p in phases:
        if p.errors:
            missed.append(f"{p.name}: {p.errors} non-2xx ({p.error_summary()})")
        missed.extend(f"{p.name}: {problem}" for problem in p.problems)
    if single_share < SINGLE_SHARE:
        missed.append(f"single {single_share:.0%} of the floor's alerts/s < {SINGLE_SHARE:.0%}")
    if single_p99 > SINGLE_P99_MS:
        missed.append(f"single p99 {single_p99:.1f} ms > {SINGLE_P99_MS:g} ms")
    if grouped_factor < GROUPED_FACTOR:
        missed.append(f"grouped {grouped_factor:.1f}x the floor's alerts/s < {GROUPED_FACTOR:g}x")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    print(f"targets missed: {'; '.join(missed)}" if missed else "targets met")


if __name__ == "__main__":
    main()
