"""Escalation benchmark: 1,000 incidents whose first step falls due at the same moment, paged through a
real worker, beat and Redis to a local HTTP receiver; and the sweep's cost as open incidents grow.

Run from the repository root:  .venv/bin/python bench/escalation.py   (needs PostgreSQL and Redis)

It uses its own PostgreSQL database (DATABASE_URL with the name replaced by cdb_console_bench_esc, dropped
and recreated on every run) and Redis database 13 (CELERY_BROKER_URL's server, flushed first).

Part 1. One person is on call, with a personal webhook pointing at the receiver. 1,000 SEV-1 incidents
are declared; the first step of each chain (page the on-call engineer) is set to fall due at one moment
T a few seconds ahead. A worker (2 processes) and beat (escalation sweep every second) run as
production runs them. Measured per incident: T → the page's arrival at the receiver (the personal
webhook). Checked: every incident's page arrived, none twice (by the message's idempotency key),
every first step is done and on its incident's timeline exactly once.

Part 2. The sweep's cost: the queries and time of one sweep with 100 due steps, among 1,000 and
among 10,000 open incidents. Target: the same number of queries (flat in the number of incidents).

The last line is `targets met` or `targets missed: <which>`; the exit code is 0 either way.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import bench_database_urls, recreate_database, setup_django  # noqa: E402

BENCH_DB = "cdb_console_bench_esc"
REDIS_DB = 13
INCIDENTS = 1000
P99_TARGET_S = 5.0
LEAD_TIME_S = 12.0  # T is this far ahead of the end of setup: the processes are up by then
SWEEP_DUE = 100
SWEEP_SIZES = (1000, 10000)


def row(label: str, value: str, target: str) -> str:
    return f"{label:<42} {value:>12}   {target:<16}"


def broker_url() -> str:
    configured = os.environ.get("CELERY_BROKER_URL", "")
    base = configured if configured.startswith("redis://") else "redis://127.0.0.1:6379/0"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "celery"), "-A", "config", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def declare_many(count: int, *, severity: int = 1) -> list[int]:
    from django.utils import timezone

    from incidents import services
    from incidents.models import IncidentType

    other = IncidentType.objects.get(slug="other")
    ids: list[int] = []
    for offset in range(0, count, 500):
        batch = [
            services.Declaration(
                incident_type=other,
                title=f"Bench incident {offset + i}",
                severity=severity,
                description="",
                affected_components=[],
                detected_at=timezone.now(),
                signals=[],
            )
            for i in range(min(500, count - offset))
        ]
        ids += [i.pk for i in services.incidents_declare(declarations=batch)]
    return ids


def part_one(database_url: str, workdir: Path) -> tuple[list[str], list[str]]:
    import redis
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.utils import timezone

    from escalation.models import Step
    from incidents.models import TimelineEvent
    from notify.models import ContactPoints, Message
    from oncall import services as oncall
    from oncall.models import Duty
    from tests.standins.receiver import Receiver

    rows: list[str] = []
    missed: list[str] = []
    broker = broker_url()
    redis.Redis.from_url(broker).flushdb()
    receiver = Receiver().start()
    try:
        User = get_user_model()
        alice = User.objects.create_user(username="alice", password=None)
        alice.groups.add(Group.objects.get(name="responder"))
        oncall.rotation_save(
            rotation=None,
            name="bench",
            duty=Duty.ONCALL_ENGINEER,
            time_zone="UTC",
            effective_from=(timezone.now() - timedelta(days=1)).date(),
            handoff_time=timezone.now().time().replace(microsecond=0),
            handoff_weekday=None,
            shift_hours=24 * 7,
            members=[alice],
        )
        ContactPoints.objects.create(user=alice, webhook_url=receiver.apprise_url("/alice"))
        ids = declare_many(INCIDENTS)
        # The notices of the declarations are not part of this measurement.
        Message.objects.filter(kind="notice").update(state="cancelled")
        due = timezone.now() + timedelta(seconds=LEAD_TIME_S)
        Step.objects.filter(incident_id__in=ids, position=0).update(due_at=due)
        Step.objects.filter(incident_id__in=ids, position__gt=0).update(due_at=due + timedelta(days=1))
        connection.close()

        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env |= {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "ESCALATION_SWEEP_SECONDS": "1",
            "NOTIFY_SWEEP_SECONDS": "1",
            "NOTIFY_CHANNELS": f"incidents={receiver.apprise_url('/incidents')}",
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + "x" * 50),
            "AUDIT_HMAC_KEY": os.environ.get("AUDIT_HMAC_KEY", "bench-audit-key"),
        }
        worker = ["worker", "--concurrency=2", "--loglevel=WARNING", "--without-gossip", "--without-mingle"]
        beat = ["beat", "--loglevel=WARNING", "--schedule", str(workdir / "beat")]
        procs = [start(worker, env, workdir / "worker.log"), start(beat, env, workdir / "beat.log")]
        try:
            deadline = due.timestamp() + 120
            while time.time() < deadline:
                pages = [r for r in receiver.received if r.path == "/alice"]
                if len(pages) >= INCIDENTS:
                    break
                time.sleep(0.2)
            time.sleep(3)  # anything that would arrive twice arrives now
        finally:
            for proc in procs:
                stop(proc)
        pages = [r for r in receiver.received if r.path == "/alice"]
        latencies = sorted(r.at - due.timestamp() for r in pages)
        keys = {r.key for r in pages}
        refs = {r.body["title"].split()[0] for r in pages}
        done = Step.objects.filter(incident_id__in=ids, position=0, state="done").count()
        rows_on_timeline = TimelineEvent.objects.filter(incident_id__in=ids, kind="escalation").count()
        p50 = statistics.median(latencies) if latencies else float("nan")
        p99 = (
            statistics.quantiles(latencies, n=100, method="inclusive")[98]
            if len(latencies) > 1
            else float("nan")
        )
        want = f"= {INCIDENTS}"
        rows.append(row(f"pages arrived (of {INCIDENTS})", str(len(pages)), want))
        rows.append(row("distinct pages (idempotency keys)", str(len(keys)), "= arrived"))
        rows.append(row("incidents paged", str(len(refs)), want))
        rows.append(row("first steps done / timeline rows", f"{done} / {rows_on_timeline}", want))
        rows.append(row("due -> received p50", f"{p50:.2f} s", "(info)"))
        rows.append(row("due -> received p99", f"{p99:.2f} s", f"<= {P99_TARGET_S:g} s"))
        if len(pages) != INCIDENTS or len(keys) != len(pages) or len(refs) != INCIDENTS:
            got = f"{len(pages)} pages arrived, {len(keys)} distinct, {len(refs)} incidents"
            missed.append(f"{got} (want {INCIDENTS} each)")
        if done != INCIDENTS or rows_on_timeline != INCIDENTS:
            missed.append(f"{done} steps done, {rows_on_timeline} timeline rows (want {INCIDENTS})")
        if not p99 <= P99_TARGET_S:
            missed.append(f"due -> received p99 {p99:.2f} s > {P99_TARGET_S} s")
    finally:
        receiver.stop()
    return rows, missed


def part_two() -> tuple[list[str], list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from escalation import services
    from escalation.models import Step
    from incidents.models import Incident

    rows: list[str] = []
    counts: list[int] = []
    for size in SWEEP_SIZES:
        existing = Incident.objects.filter(status="triage").count()
        if existing < size:
            declare_many(size - existing, severity=2)
        open_ids = list(Incident.objects.filter(status="triage").values_list("pk", flat=True)[:size])
        far = timezone.now() + timedelta(days=3)
        Step.objects.filter(state="pending").update(due_at=far)
        Step.objects.filter(incident_id__in=open_ids[:SWEEP_DUE], position=0).update(
            due_at=timezone.now() - timedelta(seconds=1), state="pending"
        )
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            performed = services.escalation_sweep()
        elapsed = (time.perf_counter() - started) * 1000
        counts.append(len(queries))
        label = f"sweep, {SWEEP_DUE} due among {size} open"
        rows.append(row(label, f"{len(queries)} queries", f"flat ({performed} steps, {elapsed:.0f} ms)"))
    missed = [] if len(set(counts)) == 1 else [f"sweep queries grow with open incidents: {counts}"]
    return rows, missed


def main() -> None:
    database_url, maintenance_url = bench_database_urls(BENCH_DB, "bench/escalation.py")
    recreate_database(maintenance_url, BENCH_DB)
    setup_django(database_url, CELERY_BROKER_URL=broker_url())
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_playbook", verbosity=0)
    with tempfile.TemporaryDirectory() as workdir:
        rows1, missed1 = part_one(database_url, Path(workdir))
    rows2, missed2 = part_two()
    print(row("measure", "value", "target"))
    print("-" * 76)
    for line in rows1 + rows2:
        print(line)
    missed = missed1 + missed2
    print("targets met" if not missed else "targets missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
