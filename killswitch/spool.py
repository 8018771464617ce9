"""Kill-switch changes the console made but could not record: the database was unreachable (a halt
from the CLI or the web without PostgreSQL), or refused the audit record after the backend changed.

The spool is a local file (settings.KILLSWITCH_SPOOL), one JSON object per line, appended and
fsynced before the person is told what happened. `services.spooled_changes_record` turns each entry
into its audit record once the database accepts writes (reconcile calls it, and so does every
action first); an entry's id is recorded with it, so it is recorded once even if the spool could
not be emptied afterwards. Every operation holds an exclusive lock on a sibling `.lock` file, so the
web's processes, the CLI and the worker on one host never interleave.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)


def path() -> Path:
    spool = Path(settings.KILLSWITCH_SPOOL)
    return spool if spool.is_absolute() else settings.BASE_DIR / spool


@contextmanager
def locked() -> Iterator[Path]:
    """Hold the spool's lock (also serialises halts made without the database on this host)."""
    spool = path()
    spool.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(spool.with_name(spool.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield spool
    finally:
        os.close(fd)  # closing releases the lock


def new_entry(**fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "at": timezone.now().isoformat(), **fields}


def append(entry: dict[str, Any], *, lock: bool = True) -> None:
    """Append one entry durably. Raises OSError when it cannot (the caller says so)."""
    line = (json.dumps(entry, ensure_ascii=True, separators=(",", ":"), default=str) + "\n").encode()
    if lock:
        with locked():
            _append(line)
    else:
        _append(line)


def _append(line: bytes) -> None:
    fd = os.open(path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def pending() -> list[dict[str, Any]]:
    """The entries waiting, oldest first. A line that is not an entry (a write cut short by a crash)
    is moved to a `.bad` file next to the spool, kept for a person to read, and skipped."""
    spool = path()
    try:
        if spool.stat().st_size == 0:
            return []
    except FileNotFoundError:
        return []
    with locked():
        entries, good, bad = [], [], []
        for line in spool.read_bytes().splitlines():
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not {"id", "at", "action", "target"} <= entry.keys():
                    raise ValueError("not a spool entry")
            except ValueError:
                bad.append(line)
            else:
                entries.append(entry)
                good.append(line)
        if bad:
            log.error("Kill-switch spool: %d unreadable line(s) moved to %s.bad", len(bad), spool)
            with open(spool.with_name(spool.name + ".bad"), "ab") as handle:
                handle.write(b"".join(line + b"\n" for line in bad))
                handle.flush()
                os.fsync(handle.fileno())
            _rewrite(spool, good)
    return entries


def remove(ids: set[str]) -> None:
    """Drop recorded entries; entries appended meanwhile stay."""
    if not ids:
        return
    with locked() as spool:
        _rewrite(spool, [line for line in spool.read_bytes().splitlines() if _id_of(line) not in ids])


def _id_of(line: bytes) -> str | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("id") if isinstance(entry, dict) else None


def _rewrite(spool: Path, lines: list[bytes]) -> None:
    tmp = spool.with_name(spool.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in lines if line.strip()))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, spool)
