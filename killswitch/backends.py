"""CDB's kill switch behind one interface: its state file, or its risk service's HTTP API.

The console reads strictly: whatever CDB's readers would guess about a missing, empty, corrupt or
unreadable state (older CDB fails open, newer fails closed) is shown as "unevaluable", and never
counted as "trading". Every write is confirmed by reading the state back; only that answer counts.

Reading never fails and never hangs: whatever bytes the file holds and whatever JSON the risk
service answers, a read returns a `State` whose text fields are escaped (no control characters,
no NUL, no lone surrogates) and cut to what the console stores; a read that does not finish within
its timeout (a FIFO, a stale network mount, a slow service) is unevaluable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

# CDB's six reasons (core/safety/kill_switch.py).
REASONS = ("manual", "circuit_breaker", "risk_limit", "system_error", "exchange_error", "auth_failure")
# Messages CDB's readers put in place of a state they could not evaluate.
UNEVALUABLE_MESSAGES = ("State file missing", "Empty state file", "Unknown", "State file read error")
UNEVALUABLE_PREFIXES = ("Corrupt state file", "Unknown kill-switch state value")
MAX_FIELD = 500
CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
# What a read keeps of each field: TargetState's column sizes (message is text, bounded here).
LIMITS = {"reason": 40, "message": 2000, "activated_at": 40, "updated_at": 40, "detail": 300}
# A real state file is about 200 bytes; more than this is not CDB's file, and is not read further.
MAX_STATE_BYTES = 64 * 1024
# Stored escaped: control characters, C1 controls, line separators and lone surrogates (which
# neither PostgreSQL text nor UTF-8 can hold).
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
DEFAULT_READ_TIMEOUT = 2.0


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any, limit: int) -> str:
    """Any value as text that can be stored and shown: a non-string as JSON, unsafe characters
    escaped (``\\x00``, ``\\ud800``), cut to `limit` characters with an ellipsis."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=repr)
    if len(value) > 4 * limit:  # escaping at most quadruples a character: never escape a megabyte
        value = value[: 4 * limit]
    text = UNSAFE.sub(_escape, value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Condition:
    HALTED = "halted"
    TRADING = "trading"
    UNEVALUABLE = "unevaluable"  # the backend answered, but its state cannot be trusted either way
    UNREACHABLE = "unreachable"  # no answer at all


@dataclass(frozen=True)
class State:
    condition: str
    reason: str | None = None
    message: str = ""
    activated_at: str | None = None
    updated_at: str | None = None
    detail: str = ""  # why unevaluable or unreachable
    raw: dict[str, Any] = field(default_factory=dict)
    # A digest of the values as read, set only when cleaning changed them (cut or escaped), so a
    # change past the stored length is still a change.
    full: str = ""

    @property
    def halted(self) -> bool:
        return self.condition == Condition.HALTED

    @property
    def trading(self) -> bool:
        return self.condition == Condition.TRADING

    def fingerprint(self) -> str:
        """What identifies this state: any change of it is a change of the kill switch."""
        parts = [self.condition, self.reason, self.message, self.activated_at, self.detail]
        return "|".join(str(v) for v in [*parts, *([self.full] if self.full else [])])

    @property
    def summary(self) -> str:
        """What a person needs to know in one line: for an unevaluable or unreachable state its
        detail comes first (the file's message may be the last good one, not the reason)."""
        if self.condition in (Condition.UNEVALUABLE, Condition.UNREACHABLE):
            return self.detail or "no detail"
        return " ".join(filter(None, [self.reason, self.message]))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("raw", "full")}


def make_state(
    condition: str,
    *,
    reason: Any = None,
    message: Any = "",
    activated_at: Any = None,
    updated_at: Any = None,
    detail: Any = "",
    raw: dict[str, Any] | None = None,
) -> State:
    """A State from values as read: each field cleaned to what the console stores (see `clean`)."""
    given = {
        "reason": reason,
        "message": message,
        "activated_at": activated_at,
        "updated_at": updated_at,
        "detail": detail,
    }
    cleaned = {k: clean(v, LIMITS[k]) for k, v in given.items()}
    changed = any(cleaned[k] != (v if v is not None else "") for k, v in given.items())
    full = ""
    if changed:
        blob = json.dumps(given, sort_keys=True, default=repr, ensure_ascii=True)
        full = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return State(
        condition,
        reason=cleaned["reason"] or None,
        message=cleaned["message"],
        activated_at=cleaned["activated_at"] or None,
        updated_at=cleaned["updated_at"] or None,
        detail=cleaned["detail"],
        raw=raw or {},
        full=full,
    )


class BackendError(Exception):
    """The backend refused, failed or could not be reached; the message says which."""


class InvalidInput(ValueError):
    pass


def check_field(name: str, value: str, *, required: bool = True, limit: int = MAX_FIELD) -> str:
    """Refuse what could corrupt CDB's line-based file: CR, LF and every other control character."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text.")
    if CONTROL.search(value):
        raise InvalidInput(f"{name} contains a line break or control character.")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{name} is required.")
    if len(value) > limit:
        raise InvalidInput(f"{name} is too long ({len(value)} characters, at most {limit}).")
    return value


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise InvalidInput(f"Unknown reason {reason!r}; use one of {', '.join(REASONS)}.")
    return reason


class Backend(Protocol):
    def read(self) -> State: ...

    def activate(self, *, operator: str, reason: str, message: str) -> State: ...

    def deactivate(self, *, operator: str, justification: str) -> State: ...

    def describe(self) -> str: ...


def _utc_naive() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class FileBackend:
    """CDB's state file, read and written exactly as CDB does, atomically and durably."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def describe(self) -> str:
        return f"file {self.path}"

    # -- reading --

    def read(self) -> State:
        """The file judged as CDB's newer reader would, within `timeout` seconds (else unevaluable)."""
        outcome = bounded(f"file:{self.path}", lambda: _read_state_bytes(self.path), self.timeout)
        if isinstance(outcome, State):
            return outcome
        try:
            text = outcome.decode("utf-8")
        except UnicodeDecodeError as exc:
            # CDB's reader fails on the same bytes: "State file read error", halted (fail closed).
            return make_state(
                Condition.UNEVALUABLE, detail=f"State file read error: invalid UTF-8 at byte {exc.start}"
            )
        return parse_state_file(text)

    # -- writing --

    def activate(self, *, operator: str, reason: str, message: str) -> State:
        operator = check_field("Operator", operator)
        reason = check_reason(reason)
        message = check_field("Message", message, required=False)
        now = _utc_naive()
        self._write(
            [
                ("state", "active"),
                ("reason", reason),
                ("message", f"{message} (operator: {operator})"),
                ("activated_at", now),
                ("updated_at", _utc_naive()),
            ]
        )
        return self.read()

    def deactivate(self, *, operator: str, justification: str) -> State:
        operator = check_field("Operator", operator)
        justification = check_field("Justification", justification)
        self._write(
            [
                ("state", "inactive"),
                ("reason", "none"),
                ("message", f"Deactivated by {operator}: {justification}"),
                ("activated_at", "none"),
                ("updated_at", _utc_naive()),
            ]
        )
        return self.read()

    def _write(self, pairs: list[tuple[str, str]]) -> None:
        """Temp file in the same directory, fsync, rename over the state file, fsync the directory."""
        body = "".join(f"{k}={v}\n" for k, v in pairs)
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.stem.lstrip('.')}.", suffix=".tmp")
        except OSError as exc:
            raise BackendError(f"Cannot write in {directory}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise BackendError(f"Cannot write {self.path}: {exc.strerror or exc}") from exc
        # The new state is in place (readers see it) but not yet durable: the caller reads it back
        # and decides (a halt that reads halted counts; a resume is undone).
        try:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise BackendError(
                f"{self.path} was replaced, but its directory could not be synced to disk: "
                f"{exc.strerror or exc}"
            ) from exc


class _Unreadable(Exception):
    """The path holds something that is not a state file CDB could have written."""


def _read_state_bytes(path: Path) -> bytes | State:
    """Open without blocking (a FIFO would wait for a writer), check that it is a regular file of a
    plausible size, and read at most MAX_STATE_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return make_state(Condition.UNEVALUABLE, detail="State file missing")
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the configured path
        return make_state(Condition.UNEVALUABLE, detail=f"State file read error: {exc.__class__.__name__}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else _kind(info.st_mode)
            raise _Unreadable(f"not a regular file ({kind})")
        if info.st_size > MAX_STATE_BYTES:
            raise _Unreadable(f"{info.st_size} bytes, more than {MAX_STATE_BYTES}")
        chunks, size = [], 0
        while chunk := os.read(fd, MAX_STATE_BYTES + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_STATE_BYTES:  # grew while being read
                raise _Unreadable(f"more than {MAX_STATE_BYTES} bytes")
        return b"".join(chunks)
    except _Unreadable as exc:
        return make_state(Condition.UNEVALUABLE, detail=f"State file read error: {exc}")
    except OSError as exc:
        return make_state(Condition.UNEVALUABLE, detail=f"State file read error: {exc.__class__.__name__}")
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device")):
        if test(mode):
            return name
    return "a special file"


# Reads still blocked after their timeout, by what they read: a path on a hung mount is not read
# again (one more stuck thread every interval) until the blocked read returns.
_blocked: dict[str, threading.Thread] = {}
_blocked_lock = threading.Lock()


def bounded[T](key: str, fn: Callable[[], T], timeout: float) -> T | State:
    """Run `fn` in a daemon thread and wait at most `timeout` seconds: open() and read() cannot be
    interrupted, so a call that blocks is left behind and the read is unevaluable."""
    with _blocked_lock:
        stuck = _blocked.get(key)
        if stuck is not None and stuck.is_alive():
            # The same words as the timeout itself: one unevaluable state, recorded once.
            return make_state(Condition.UNEVALUABLE, detail=f"State read timed out after {timeout:g} s")
        _blocked.pop(key, None)
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"killswitch-read {key}"[:60], daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        with _blocked_lock:
            _blocked[key] = thread
        return make_state(Condition.UNEVALUABLE, detail=f"State read timed out after {timeout:g} s")
    if errors:
        raise errors[0]
    return result[0]


def parse_state_file(text: str) -> State:
    """Parse like CDB's readers (lines end at LF, CRLF or CR; strip each line, skip lines without
    '=', split on the first '=', strip key and value), and judge as its newer reader does, strictly:
    whatever it would fail closed on, and two `state` lines (how a line-break injection looks), are
    unevaluable."""
    values: dict[str, str] = {}
    seen_state = 0
    for line in re.split(r"\r\n|\r|\n", text):
        line = line.strip()
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        values[key] = value
        seen_state += key == "state"
    none = lambda v: None if v in (None, "", "none") else v  # noqa: E731
    common: dict[str, Any] = {
        "reason": none(values.get("reason")),
        "message": values.get("message", ""),
        "activated_at": none(values.get("activated_at")),
        "updated_at": none(values.get("updated_at")),
        "raw": values,
    }
    if not text.strip():
        return make_state(Condition.UNEVALUABLE, detail="Empty state file", raw=values)
    if "state" not in values:
        return make_state(Condition.UNEVALUABLE, detail="Corrupt state file: missing state key", raw=values)
    if seen_state > 1:
        # CDB would take the last one; two state lines are how a line-break injection looks.
        return make_state(
            Condition.UNEVALUABLE, detail="Corrupt state file: more than one state line", **common
        )
    value = values["state"]
    if value == "active":
        return make_state(Condition.HALTED, **common)
    if value == "inactive":
        return make_state(Condition.TRADING, **common)
    return make_state(Condition.UNEVALUABLE, detail=f"Unknown kill-switch state value: {value}", **common)


class HttpBackend:
    """CDB's risk service: GET /kill-switch, POST /kill-switch/activate and /deactivate."""

    def __init__(
        self, base_url: str, *, timeout: float = 3.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = transport

    def describe(self) -> str:
        return f"risk service {self.base_url}"

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=self.timeout, transport=self._transport)

    def read(self) -> State:
        """GET /kill-switch, at most MAX_STATE_BYTES within `timeout` seconds in all. No connection
        is unreachable; an answer that is late, cut, too long, not JSON or not CDB's is unevaluable."""
        deadline = time.monotonic() + self.timeout
        body = bytearray()
        try:
            with self._client() as client, client.stream("GET", "/kill-switch") as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_STATE_BYTES:
                        return make_state(
                            Condition.UNEVALUABLE, detail=f"answer longer than {MAX_STATE_BYTES} bytes"
                        )
                    if time.monotonic() > deadline:
                        return make_state(
                            Condition.UNEVALUABLE, detail=f"answer not complete within {self.timeout:g} s"
                        )
                status = response.status_code
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return make_state(Condition.UNREACHABLE, detail=f"{exc.__class__.__name__}: {exc}")
        except httpx.TimeoutException:
            return make_state(Condition.UNEVALUABLE, detail=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return make_state(Condition.UNEVALUABLE, detail=f"broken answer: {exc.__class__.__name__}: {exc}")
        try:
            parsed: Any = json.loads(bytes(body))
        except ValueError:  # not JSON, or not UTF-8
            parsed = None
        if status != 200 or not isinstance(parsed, dict):
            error = (
                parsed.get("error")
                if isinstance(parsed, dict)
                else bytes(body[:100]).decode("utf-8", "replace")
            )
            return make_state(Condition.UNEVALUABLE, detail=f"HTTP {status}: {clean(error, 200)}")
        return judge_api_state(parsed)

    def activate(self, *, operator: str, reason: str, message: str) -> State:
        operator = check_field("Operator", operator)
        reason = check_reason(reason)
        message = check_field("Message", message, required=False)
        self._post("/kill-switch/activate", {"operator": operator, "reason": reason, "message": message})
        return self.read()  # CDB answers 200 "active: true" even when its write failed

    def deactivate(self, *, operator: str, justification: str) -> State:
        operator = check_field("Operator", operator)
        justification = check_field("Justification", justification)
        self._post("/kill-switch/deactivate", {"operator": operator, "justification": justification})
        return self.read()

    def _post(self, path: str, payload: dict[str, str]) -> None:
        try:
            with self._client() as client:
                response = client.post(path, json=payload)
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.describe()} unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise BackendError(
                f"{self.describe()} answered HTTP {response.status_code}: {response.text[:200]}"
            )


# The answer's fields and the JSON types CDB gives them (docs/cdb/contracts.md 1.2).
API_TYPES: dict[str, tuple[type, ...]] = {
    "active": (bool,),
    "reason": (str, type(None)),
    "message": (str, type(None)),
    "activated_at": (str, type(None)),
}


def judge_api_state(body: dict[str, Any]) -> State:
    """The risk service's answer, judged like the file: its fail-safe guesses are "unevaluable", and
    so is an answer whose fields are not of CDB's types (the values are kept, cleaned, to be seen)."""
    common: dict[str, Any] = {
        "reason": body.get("reason"),
        "message": body.get("message") or "",
        "activated_at": body.get("activated_at"),
        "raw": body,
    }
    wrong = [
        k
        for k, types in API_TYPES.items()
        if (k in body or k == "active") and not isinstance(body.get(k), types)
    ]
    if wrong:
        what = ", ".join(f"{k} is {type(body.get(k)).__name__}" for k in wrong)
        return make_state(Condition.UNEVALUABLE, detail=f"Malformed answer: {what}", **common)
    message, reason = common["message"], common["reason"]
    if reason in (None, "system_error") and (
        message in UNEVALUABLE_MESSAGES or message.startswith(UNEVALUABLE_PREFIXES)
    ):
        return make_state(Condition.UNEVALUABLE, detail=message, **common)
    return make_state(Condition.HALTED if body["active"] else Condition.TRADING, **common)


def backend_for(config: dict[str, Any]) -> Backend:
    kind = config.get("backend")
    if kind == "file":
        return FileBackend(config["path"], timeout=float(config.get("timeout", DEFAULT_READ_TIMEOUT)))
    if kind == "http":
        return HttpBackend(config["url"], timeout=float(config.get("timeout", 3.0)))
    raise ValueError(f"Unknown kill-switch backend {kind!r}")
