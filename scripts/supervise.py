"""Run a Procfile's processes in the foreground and keep them running: `make run` uses it for
Procfile.dev (web, worker, beat); production uses systemd (deploy/systemd/).

honcho stops every process as soon as one dies, so a worker that Celery gives up on (a Redis outage
can do that) would leave the console without routing, reconcile and sweeps. This runner instead:

- starts each process in a session of its own (the terminal's Ctrl-C reaches only this runner),
  with its output prefixed by its name;
- starts a process that exits again, after 1 s, doubling to at most 30 s while it keeps dying
  within a minute of starting;
- prints where the console answers, and where the demo credentials are, once every process is up
  (web answers HTTP, the worker and beat have said they are ready);
- on Ctrl-C or SIGTERM stops them all: SIGTERM to each (Celery's warm shutdown), then SIGKILL to
  any still running after --stop-seconds; a second Ctrl-C kills at once.

Usage: supervise.py [--url URL] [--credentials PATH] [--stop-seconds N] [--no-restart] PROCFILE
Standard library only: it must run before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# A process is up when it says so. web: when the console answers HTTP (checked by the runner).
READY = {
    "worker": re.compile(r"celery@\S+ ready\."),
    "beat": re.compile(r"celery beat v\S+ .*is starting\."),
}
RESTART_FIRST, RESTART_MAX, STABLE_AFTER = 1.0, 30.0, 60.0
COLOURS = ("36", "33", "35", "32", "34", "31")


@dataclass
class Process:
    name: str
    command: str
    colour: str
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    reported: bool = False  # its readiness since its last start was noticed
    starts: int = 0
    backoff: float = RESTART_FIRST
    restart_at: float | None = None
    pump: threading.Thread | None = field(default=None, repr=False)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx itself is the answer


def read_procfile(path: Path) -> list[tuple[str, str]]:
    entries = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name.strip()):
            raise SystemExit(f"{path}: not a Procfile line: {line!r}")
        entries.append((name.strip(), command.strip()))
    return entries


class Supervisor:
    def __init__(
        self,
        entries: list[tuple[str, str]],
        *,
        url: str,
        credentials: Path,
        stop_seconds: float,
        restart: bool,
    ) -> None:
        self.processes = [
            Process(name, command, COLOURS[i % len(COLOURS)]) for i, (name, command) in enumerate(entries)
        ]
        self.url = url
        self.credentials = credentials
        self.stop_seconds = stop_seconds
        self.restart = restart
        self.width = max(len(p.name) for p in self.processes)
        self.tty = sys.stdout.isatty()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.interrupts = 0
        self.announced = False
        self.opener = urllib.request.build_opener(_NoRedirect)

    # -- output --

    def say(self, name: str, text: str, colour: str = "1") -> None:
        prefix = f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)} | "
        if self.tty:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self.lock:
            sys.stdout.write(prefix + text + "\n")
            sys.stdout.flush()

    def _pump(self, process: Process, stream: IO[bytes]) -> None:
        pattern = READY.get(process.name)
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.say(process.name, line, process.colour)
            if pattern is not None and not process.ready and pattern.search(line):
                process.ready = True
        stream.close()

    # -- processes --

    def start(self, process: Process) -> None:
        # exec: the shell expands ${VAR:-default}, then the command replaces it (signals reach it).
        process.popen = subprocess.Popen(  # noqa: S603  (the Procfile's own commands)
            ["/bin/sh", "-c", f"exec {process.command}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        process.started_at = time.monotonic()
        process.ready = process.reported = False
        process.restart_at = None
        process.starts += 1
        again = " again" if process.starts > 1 else ""
        self.say(process.name, f"started{again} (pid {process.popen.pid}): {process.command}")
        assert process.popen.stdout is not None
        process.pump = threading.Thread(target=self._pump, args=(process, process.popen.stdout), daemon=True)
        process.pump.start()

    def _check_web(self, process: Process) -> None:
        """Up when the URL answers below 500 (the login redirect counts; it is not followed)."""
        try:
            with self.opener.open(self.url, timeout=2) as answer:
                process.ready = answer.status < 500
        except urllib.error.HTTPError as answer:
            process.ready = answer.code < 500
        except (urllib.error.URLError, OSError, ValueError):
            process.ready = False

    def watch(self) -> None:
        """One round: notice exits, restart when due, check readiness, announce once all are up."""
        now = time.monotonic()
        for process in self.processes:
            popen = process.popen
            if popen is not None and popen.poll() is not None:
                code = popen.returncode
                how = f"signal {-code}" if code < 0 else f"code {code}"
                # What it left behind (a prefork pool's children) goes before it starts again.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                if process.pump is not None:
                    process.pump.join(timeout=2)
                process.popen, process.ready = None, False
                if not self.restart:
                    self.say(process.name, f"exited ({how}); stopping the others (--no-restart)")
                    self.stopping.set()
                    return
                if now - process.started_at >= STABLE_AFTER:
                    process.backoff = RESTART_FIRST
                process.restart_at = now + process.backoff
                self.say(process.name, f"exited ({how}); starting it again in {process.backoff:g} s")
                process.backoff = min(process.backoff * 2, RESTART_MAX)
            elif popen is None and process.restart_at is not None and now >= process.restart_at:
                self.start(process)
            elif popen is not None and not process.ready and process.name == "web":
                self._check_web(process)
        for process in self.processes:
            if process.ready and not process.reported:
                process.reported = True
                if self.announced:
                    self.say(process.name, "up again")
        if not self.announced and all(p.ready for p in self.processes):
            self.announced = True
            self.announce()

    def announce(self) -> None:
        lines = [f"The console is up: {self.url}"]
        if self.credentials.exists():
            lines.append(f"Demo users and their passwords: {self.credentials}")
        lines.append("Ctrl-C stops it.")
        with self.lock:
            for line in lines:
                sys.stdout.write(("\033[1m" + line + "\033[0m" if self.tty else line) + "\n")
            sys.stdout.flush()

    def stop(self) -> None:
        """SIGTERM to every process (not to its children: Celery's pool is stopped by its parent),
        then SIGKILL to each process group still running after stop_seconds."""
        running = [p for p in self.processes if p.popen is not None and p.popen.poll() is None]
        began = time.monotonic()
        for process in running:
            assert process.popen is not None
            self.say(process.name, "stopping (SIGTERM)")
            with contextlib.suppress(ProcessLookupError):
                process.popen.terminate()
        deadline = began + self.stop_seconds
        while any(p.popen is not None and p.popen.poll() is None for p in running):
            if time.monotonic() >= deadline or self.interrupts > 1:
                break
            time.sleep(0.05)
        for process in running:
            assert process.popen is not None
            if process.popen.poll() is None:
                self.say(
                    process.name, f"still running after {time.monotonic() - began:.1f} s: killed (SIGKILL)"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
            else:
                self.say(process.name, f"stopped (code {process.popen.returncode})")
            # Whatever the process left in its group (a pool child) goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            if process.pump is not None:
                process.pump.join(timeout=2)

    def run(self) -> int:
        def on_signal(signum: int, frame: object) -> None:
            self.interrupts += 1
            self.stopping.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        for process in self.processes:
            self.start(process)
        while not self.stopping.wait(0.2):
            self.watch()
        self.stop()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("procfile", type=Path)
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT', '8000')}/")
    parser.add_argument("--credentials", type=Path, default=Path("var/demo-credentials.txt"))
    parser.add_argument("--stop-seconds", type=float, default=10.0)
    parser.add_argument("--no-restart", dest="restart", action="store_false")
    args = parser.parse_args(argv)
    supervisor = Supervisor(
        read_procfile(args.procfile),
        url=args.url,
        credentials=args.credentials,
        stop_seconds=args.stop_seconds,
        restart=args.restart,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
