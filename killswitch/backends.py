"""CDB's kill switch behind one interface: its state file, or its risk service's HTTP API.

The console reads strictly: whatever CDB's readers would guess about a missing, empty, corrupt or
unreadable state (older CDB fails open, newer fails closed) is shown as "unevaluable", and never
counted as "trading". Every write is confirmed by reading the state back; only that answer counts.
"""

from __future__ import annotations

import os
import re
import tempfile
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

    @property
    def halted(self) -> bool:
        return self.condition == Condition.HALTED

    @property
    def trading(self) -> bool:
        return self.condition == Condition.TRADING

    def fingerprint(self) -> str:
        """What identifies this state: any change of it is a change of the kill switch."""
        return "|".join(
            str(v) for v in (self.condition, self.reason, self.message, self.activated_at, self.detail)
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "raw"}


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

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"file {self.path}"

    # -- reading --

    def read(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State(Condition.UNEVALUABLE, detail="State file missing")
        except (OSError, UnicodeDecodeError) as exc:
            return State(Condition.UNEVALUABLE, detail=f"State file read error: {exc.__class__.__name__}")
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


def parse_state_file(text: str) -> State:
    """Parse like CDB's readers (strip, skip lines without '=', split on the first '='), judge strictly."""
    values: dict[str, str] = {}
    seen_state = 0
    for line in text.splitlines():
        line = line.strip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key] = value
        seen_state += key == "state"
    raw = dict(values)
    none = lambda v: None if v in (None, "none") else v  # noqa: E731
    common: dict[str, Any] = {
        "reason": none(values.get("reason")),
        "message": values.get("message", ""),
        "activated_at": none(values.get("activated_at")),
        "updated_at": none(values.get("updated_at")),
        "raw": raw,
    }
    if not text.strip():
        return State(Condition.UNEVALUABLE, detail="Empty state file", raw=raw)
    if "state" not in values:
        return State(Condition.UNEVALUABLE, detail="Corrupt state file: missing state key", raw=raw)
    if seen_state > 1:
        # CDB would take the last one; two state lines are how a line-break injection looks.
        return State(Condition.UNEVALUABLE, detail="Corrupt state file: more than one state line", **common)
    value = values["state"]
    if value == "active":
        return State(Condition.HALTED, **common)
    if value == "inactive":
        return State(Condition.TRADING, **common)
    return State(Condition.UNEVALUABLE, detail=f"Unknown kill-switch state value: {value}", **common)


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
        try:
            with self._client() as client:
                response = client.get("/kill-switch")
        except httpx.HTTPError as exc:
            return State(Condition.UNREACHABLE, detail=f"{exc.__class__.__name__}: {exc}"[:300])
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            response.status_code != 200
            or not isinstance(body, dict)
            or not isinstance(body.get("active"), bool)
        ):
            detail = body.get("error") if isinstance(body, dict) else response.text[:100]
            return State(
                Condition.UNEVALUABLE, detail=f"HTTP {response.status_code}: {detail}", raw={"body": body}
            )
        return judge_api_state(body)

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


def judge_api_state(body: dict[str, Any]) -> State:
    """The risk service's answer, judged like the file: its fail-safe guesses are "unevaluable"."""
    message = str(body.get("message") or "")
    reason = body.get("reason")
    common: dict[str, Any] = {
        "reason": reason,
        "message": message,
        "activated_at": body.get("activated_at"),
        "raw": body,
    }
    if reason in (None, "system_error") and (
        message in UNEVALUABLE_MESSAGES or message.startswith(UNEVALUABLE_PREFIXES)
    ):
        return State(Condition.UNEVALUABLE, detail=message, **common)
    return State(Condition.HALTED if body["active"] else Condition.TRADING, **common)


def backend_for(config: dict[str, Any]) -> Backend:
    kind = config.get("backend")
    if kind == "file":
        return FileBackend(config["path"])
    if kind == "http":
        return HttpBackend(config["url"], timeout=float(config.get("timeout", 3.0)))
    raise ValueError(f"Unknown kill-switch backend {kind!r}")
