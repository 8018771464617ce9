"""The audit anchor: each committed audit record's seq and digest, appended to a file outside the
database (settings.AUDIT_ANCHOR_FILE), so that emptying or rewriting the audit table is found.

Appending never blocks nor fails the change being audited: lines are queued after the commit and
written by one background thread per process (O_APPEND, one write per line, fsync). A line that
cannot be written is kept and retried with the next one, and logged; the process writes what is
queued before it exits. The file is a lower bound: verify-audit requires every anchored record to be
in the database with the same digest; records not yet anchored are judged by the chain alone.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)
LINE = re.compile(r"^(\d+) ([0-9a-f]{64})\b")


def anchor_path() -> Path | None:
    value = str(settings.AUDIT_ANCHOR_FILE or "").strip()
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


class _Writer:
    """One thread per process appends the queued lines, in order; `flush` waits until it is idle."""

    def __init__(self) -> None:
        # A line to append, or an event to set once everything queued before it has been tried.
        self._queue: queue.Queue[tuple[Path, str] | threading.Event] = queue.Queue()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending: list[tuple[Path, str]] = []  # lines not written yet, oldest first
        self.failures = 0

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="audit-anchor", daemon=True)
                    self._thread.start()

    def put(self, path: Path, line: str) -> None:
        self._queue.put((path, line))
        self._ensure_thread()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued line has been tried; False if that took longer than `timeout`."""
        done = threading.Event()
        self._queue.put(done)
        self._ensure_thread()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._pending.append(item)
            self._write_pending()

    def _write_pending(self) -> None:
        """Write every pending line, oldest first; a path that fails keeps its lines for the next try
        (lines for a path no longer configured are dropped)."""
        current = self._pending[-1][0]
        kept: list[tuple[Path, str]] = []
        failed = False
        for path, line in self._pending:
            if path != current:
                continue
            if not failed:
                try:
                    _append(path, line)
                    continue
                except OSError as exc:
                    failed = True
                    self.failures += 1
                    log.error(
                        "Audit anchor %s could not be written (%s); retried with the next record", path, exc
                    )
            kept.append((path, line))
        self._pending = kept[-10_000:]  # never grow without bound: the newest lines matter most


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode())  # one write of a short line: appends never interleave
        os.fsync(fd)
    finally:
        os.close(fd)


_writer = _Writer()


def append(seq: int, digest: str, created_at: str) -> None:
    """Queue one record's anchor line (call after the commit). Never raises, never waits."""
    path = anchor_path()
    if path is None:
        return
    try:
        _writer.put(path, f"{seq} {digest} {created_at}\n")
    except Exception:  # a halt must never fail because of its anchor
        log.exception("Audit anchor line for record #%s could not be queued", seq)


def flush(timeout: float = 5.0) -> bool:
    return _writer.flush(timeout)


atexit.register(flush, 5.0)


@dataclass(frozen=True)
class Anchors:
    path: Path | None
    records: dict[int, str]  # seq → the digest first anchored for it
    problem: str = ""  # why the file could not be read, if it could not
    # Records anchored again with another digest: a chain rebuilt after it was emptied.
    conflicts: tuple[int, ...] = ()

    @property
    def last(self) -> int:
        return max(self.records, default=0)


def read() -> Anchors:
    """Every anchored (seq, digest). A missing file is an empty anchor; an unreadable one says why."""
    path = anchor_path()
    if path is None:
        return Anchors(None, {})
    records: dict[int, str] = {}
    conflicts: set[int] = set()
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if match := LINE.match(line):
                    seq, digest = int(match[1]), match[2]
                    if records.setdefault(seq, digest) != digest:
                        conflicts.add(seq)
    except FileNotFoundError:
        return Anchors(path, {})
    except OSError as exc:
        return Anchors(path, {}, problem=f"{exc.__class__.__name__}: {exc.strerror or exc}")
    return Anchors(path, records, conflicts=tuple(sorted(conflicts)))
