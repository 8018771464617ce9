"""Kill-switch benchmark: how long a halt takes on the file backend, through the console's services.

Run from the repository root:  .venv/bin/python bench/killswitch.py

It uses its own PostgreSQL database (DATABASE_URL with the name replaced by cdb_console_bench_ks, dropped
and recreated on every run) and a state file in a temporary directory on a real filesystem (the backend
fsyncs the file and its directory). One responder and two leads run activate/resume cycles: the
responder halts (killswitch_activate), one lead requests a resume and the other approves it
(reauthenticated=True), which puts the target back to trading for the next cycle.

The measured figure is "activate requested → state file durable and confirmed by re-read": the wall
time of killswitch_activate, which locks the target's row, writes the file durably (temp file, fsync,
rename, fsync of the directory), reads it back, writes the audit record and commits, all before it
returns. Request and approval are timed too and printed as extra rows without a target.
The last line is `targets met` or `targets missed: <which>`; the exit code is 0 either way.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

# Run as a script (python bench/x.py): the repository root must come first on the path.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import bench_database_urls, recreate_database, setup_django  # noqa: E402

BENCH_DB = "cdb_console_bench_ks"

CYCLES = 200
WARMUP = 10  # cycles run first and not timed: connections, caches, first rows
ACTIVATE_P99_MS = 100.0
TARGET = "production"
JUSTIFICATION = "Benchmark cycle: the cause is understood and it is safe to resume trading."


# --- Database and Django ------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/self/mounts), or "unknown"."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def create_users() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    users: dict[str, Any] = {}
    for name, role in [("bench-responder", "responder"), ("lead-a", "lead"), ("lead-b", "lead")]:
        user = User.objects.create_user(username=name, password=None)
        user.groups.add(Group.objects.get(name=role))
        users[name] = user
    return users


# --- Measurement --------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    target_ms: float | None = None
    times: list[float] = field(default_factory=list)

    def timed(self, fn: Callable[[], Any], *, record: bool) -> Any:
        started = time.perf_counter()
        result = fn()
        elapsed = (time.perf_counter() - started) * 1000
        if record:
            self.times.append(elapsed)
        return result

    @property
    def p50(self) -> float:
        return statistics.median(self.times)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.times, n=100, method="inclusive")[98]

    def target(self) -> str:
        return f"p99 ≤ {self.target_ms:g} ms" if self.target_ms is not None else "-"

    def missed(self) -> str | None:
        if self.target_ms is not None and self.p99 > self.target_ms:
            return f"{self.name} p99 {self.p99:.1f} ms > {self.target_ms:g} ms"
        return None

    def result(self) -> str:
        if self.target_ms is None:
            return "(info)"
        return "missed" if self.missed() else "met"


def run_cycles(users: dict[str, Any], state_file: Path, series: dict[str, Series]) -> None:
    """WARMUP untimed cycles, then CYCLES timed ones; every step is checked, not only timed."""
    from killswitch.backends import FileBackend
    from killswitch.services import (
        killswitch_activate,
        killswitch_approve_resume,
        killswitch_request_resume,
    )

    file = FileBackend(state_file)
    # The same durable write and re-read on a scratch file beside the state file, without the
    # console: the disk's share of the activate time.
    probe = FileBackend(state_file.parent.parent / "probe" / ".cdb_kill_switch.state")
    probe.path.parent.mkdir(exist_ok=True)
    responder, requester, approver = users["bench-responder"], users["lead-a"], users["lead-b"]
    for cycle in range(WARMUP + CYCLES):
        record = cycle >= WARMUP
        outcome = series["activate"].timed(
            partial(
                killswitch_activate,
                target=TARGET,
                actor=responder,
                reason="manual",
                message=f"benchmark cycle {cycle}",
            ),
            record=record,
        )
        series["file"].timed(
            partial(probe.activate, operator="bench", reason="manual", message=f"probe {cycle}"),
            record=record,
        )
        if not (outcome.changed and outcome.state.halted and file.read().halted):
            raise SystemExit(f"cycle {cycle}: the halt did not take: {outcome}")
        request = series["request"].timed(
            partial(killswitch_request_resume, target=TARGET, actor=requester, justification=JUSTIFICATION),
            record=record,
        )
        outcome = series["approve"].timed(
            partial(killswitch_approve_resume, request_id=request.pk, actor=approver, reauthenticated=True),
            record=record,
        )
        if not (outcome.changed and outcome.state.trading and file.read().trading):
            raise SystemExit(f"cycle {cycle}: the resume did not take: {outcome}")


def print_table(rows: list[Series]) -> None:
    header = ["operation", "n", "p50 ms", "p99 ms", "target", "result"]
    cells = [
        [s.name, str(len(s.times)), f"{s.p50:.1f}", f"{s.p99:.1f}", s.target(), s.result()] for s in rows
    ]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    right = {1, 2, 3}

    def line(values: list[str]) -> str:
        return " | ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in cells:
        print(line(r))


def main() -> None:
    database_url, maintenance_url = bench_database_urls(BENCH_DB, "bench/killswitch.py")
    started = time.perf_counter()
    workdir = tempfile.TemporaryDirectory(prefix="cdb-bench-ks-")
    state_file = Path(workdir.name) / TARGET / ".cdb_kill_switch.state"
    state_file.parent.mkdir()
    recreate_database(maintenance_url, BENCH_DB)
    setup_django(database_url, KILLSWITCH_TARGETS=f"{TARGET}=file:{state_file}")

    from django.core.management import call_command
    from django.db import connection

    from killswitch import audit
    from killswitch.backends import FileBackend
    from killswitch.models import Action, AuditRecord

    call_command("migrate", verbosity=0, interactive=False)
    print(f"database {BENCH_DB} created and migrated in {time.perf_counter() - started:.1f} s")
    FileBackend(state_file).deactivate(operator="setup", justification="initial state for the benchmark")
    fs = filesystem_of(state_file.parent)
    print(
        f"state file {state_file} on {fs}" + (" (memory: fsync costs nothing here)" if fs == "tmpfs" else "")
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        print(f"PostgreSQL synchronous_commit = {cursor.fetchone()[0]}")

    users = create_users()
    series = {
        "activate": Series("activate → durable, confirmed", ACTIVATE_P99_MS),
        "request": Series("request resume"),
        "approve": Series("approve resume → trading"),
        "file": Series("file write+fsync+re-read alone"),
    }
    load_before = os.getloadavg()
    timing_started = time.perf_counter()
    run_cycles(users, state_file, series)
    timing_seconds = time.perf_counter() - timing_started
    load_after = os.getloadavg()

    checked, findings = audit.verify()
    counts = {
        a: AuditRecord.objects.filter(action=a).count() for a in (Action.ACTIVATED, Action.RESUME_APPROVED)
    }
    if (
        findings
        or counts[Action.ACTIVATED] != WARMUP + CYCLES
        or counts[Action.RESUME_APPROVED] != WARMUP + CYCLES
    ):
        raise SystemExit(f"audit does not match the cycles: {counts}, findings {[str(f) for f in findings]}")
    print(
        f"{WARMUP} warm-up cycles, then {CYCLES} timed activate/request/approve cycles "
        f"in {timing_seconds:.1f} s; audit chain of {checked} records verified, "
        "one ACTIVATED and one RESUME_APPROVED per cycle"
    )
    print(
        "time = wall time of each service call in-process "
        "(row lock, file write + fsync, re-read, audit record, commit)"
    )
    print(
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"(1/5/15 min after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}) "
        f"on {os.cpu_count()} CPUs "
        "(well above 1 means other processes competed and p99 is pessimistic)\n"
    )
    rows = list(series.values())
    print_table(rows)
    missed = [m for m in (s.missed() for s in rows) if m]
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    workdir.cleanup()
    print(f"targets missed: {', '.join(missed)}" if missed else "targets met")


if __name__ == "__main__":
    main()
