"""`make run` as a newcomer meets it, in a copy of this checkout (its own SQLite database, filesystem
broker and var/): the URL and where the demo credentials are come last, once web, worker and beat are
up; routine task traffic stays out of the output; a worker that dies is started again; Ctrl-C stops
every process, each on its own (none has to be killed)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_deploy import _free_port

ROOT = Path(__file__).resolve().parent.parent
# Lines that Celery and runserver write for routine work, every few seconds.
ROUTINE = re.compile(r"succeeded in|\] received|Sending due task|GET /console/liveness/|GET /detection/")


def copy_checkout(target: Path) -> Path:
    """The working tree's files (tracked and new, not ignored), the built assets, the virtualenv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # mtimes too: make sees what is built as built
    for built in ("static/vendor", "staticfiles"):
        shutil.copytree(ROOT / built, target / built, copy_function=shutil.copy2)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    return target


class Output:
    """Every line the command prints, read as it comes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        assert process.stdout is not None
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, *, after: int = 0, seconds: float = 120) -> int:
        """The index of the first line from `after` on that matches; fails after `seconds`."""
        regex = re.compile(pattern)
        with self._cond:
            found = self._cond.wait_for(
                lambda: any(regex.search(line) for line in self.lines[after:]), timeout=seconds
            )
            assert found, f"no line matches {pattern!r}:\n" + "\n".join(self.lines[-60:])
            return next(i for i, line in enumerate(self.lines) if i >= after and regex.search(line))

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def routed_at(database: Path) -> str | None:
    """When alert routing last ran (its heartbeat), read from the copy's SQLite database."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute(
                "SELECT last_seen FROM console_heartbeat WHERE name = 'alert routing'"
            ).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def routing_runs_twice(database: Path) -> None:
    seen: set[str] = set()

    def ran() -> bool:
        if (at := routed_at(database)) is not None:
            seen.add(at)
        return len(seen) >= 3  # the value before, and two runs after

    wait_until(ran, 120, "alert routing did not run (worker or beat not working)")


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Output, Path, int]]:
    checkout = copy_checkout(tmp_path / "console")
    port = _free_port()
    drop = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env |= {"CONSOLE_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    # Its own session, as a terminal's foreground job: Ctrl-C reaches make and the runner.
    process = subprocess.Popen(
        ["make", "run"],  # noqa: S607
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    output = Output(process)
    try:
        yield process, output, checkout, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        for pid in started_pids(output):  # nothing may outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def started_pids(output: Output) -> list[int]:
    return [int(pid) for pid in re.findall(r"\| started(?: again)? \(pid (\d+)\)", output.text())]


def test_make_run_starts_quietly_restarts_a_dead_worker_and_stops_on_ctrl_c(make_run):
    process, output, checkout, port = make_run
    url = f"http://127.0.0.1:{port}/"

    # 1. Once everything is up, the URL and the credentials' file are the last lines printed.
    up = output.wait_for(r"^The console is up: ", seconds=600)
    end_of_banner = output.wait_for(r"^Ctrl-C stops it\.$", after=up)
    assert output.lines[up:end_of_banner] == [
        f"The console is up: {url}",
        "Demo users and their passwords: var/demo-credentials.txt",
    ]
    assert "lead" in (checkout / "var" / "demo-credentials.txt").read_text()
    before_up = output.text().split("The console is up")[0]
    for name in ("web", "worker", "beat"):
        assert re.search(rf"^\S+ {name} +\| started \(pid \d+\)", before_up, re.M), name

    # 2. Routine work (routing every 5 s, the other sweeps) prints nothing.
    routing_runs_twice(checkout / "var" / "console.sqlite3")
    after = output.lines[end_of_banner + 1 :]
    assert not [line for line in after if ROUTINE.search(line)], after
    assert after == [], "the URL and credentials are no longer the last lines printed"
    assert httpx.get(url, follow_redirects=True, timeout=10).status_code == 200  # a person's visit

    # 3. A worker that dies is started again, and works.
    [worker] = [int(p) for p in re.findall(r"worker +\| started \(pid (\d+)\)", output.text())]
    os.kill(worker, signal.SIGKILL)
    exited = output.wait_for(r"worker +\| exited \(signal 9\); starting it again", after=end_of_banner)
    output.wait_for(r"worker +\| started again \(pid \d+\)", after=exited)
    output.wait_for(r"worker +\| up again", after=exited)
    routing_runs_twice(checkout / "var" / "console.sqlite3")

    # 4. Ctrl-C: every process stops by itself (Celery's warm shutdown included), and make ends.
    pids = started_pids(output)
    interrupted = len(output.lines)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)  # a generous bound: the runner kills what is left after 10 s
    stopped = "\n".join(output.lines[interrupted:])
    for name in ("web", "worker", "beat"):
        assert re.search(rf"{name} +\| stopped \(code", stopped), (name, stopped)
    assert "killed (SIGKILL)" not in stopped, stopped
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
