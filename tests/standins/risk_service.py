"""A local stand-in for CDB's risk service and its kill-switch state file, for the test suite.

It reproduces the real stack (``core/safety/kill_switch.py`` and the Flask endpoints of
``services/risk/service.py``) as captured in ``docs/cdb/upstream/http-transcripts.md``:

* ``semantics="mid"``: the mid-2026 reader (tag [M]); a missing, empty or corrupt file reads as
  *inactive* (fail-open).
* ``semantics="new"``: the later reader (tag [N]); the same conditions read as *active* with
  ``reason=system_error`` and ``activated_at=now`` (fail-closed).

Both semantics run the same HTTP layer (the captures are "[M] code with [N] kill-switch semantics").

Where the transcripts leave a question open, the answer comes from CDB's public source; a comment
or docstring at each such place says so. The main ones:

* The activate reply's ``reason``/``message``/``activated_at`` are the state *re-read* after the
  write, not what was written. The reader strips every key and value, so the file line
  ``message= (operator: alice)`` reads back as ``(operator: alice)`` (G.7), and an injected
  ``message=halt\\nstate=inactive`` reads back as ``halt`` (G.7/G.8).
* Write errors are swallowed: the temp file stays behind when the final rename fails (G.2 lists a
  152-byte ``.cdb_kill_switch.tmp``), and the reply is still 200.
* Activate and deactivate build a ``KillSwitch``, whose constructor writes an "Initial state" file
  (inactive) when none exists. GET and /metrics never create the file (G.3, G.4).
* Deactivate always writes, even when the switch is already inactive. The reply is the same
  ``{"active":false,"deactivated":true}``; only ``message`` and ``updated_at`` change in the file.
  The transcripts cannot tell a rewrite from a no-op (G.1 shows no file after the second
  deactivate); ``KillSwitch.deactivate`` has no "already inactive" check, so the stand-in
  rewrites.
* Only a completely empty file (no lines at all) is "Empty state file". A whitespace-only file
  has lines but no keys, so [M] reads "Unknown" (inactive) and [N] reads "Corrupt state file:
  missing state key".
* The file is read in text mode with universal newlines, so a bare CR ends a line just as LF and
  CRLF do. A CR inside a message injects a line, exactly as an LF does.
* The existence check has ``pathlib.Path.exists`` semantics (Python 3.11 in CDB's image): ENOENT,
  ENOTDIR, EBADF and ELOOP mean "missing", and any other stat error (EACCES, ENAMETOOLONG) is
  raised. That raise is the only real cause of GET's 500 ``{"error": ...}``, which
  :meth:`RiskServiceStandIn.fail_next_get` also simulates. /metrics then reports 0, and activate
  or deactivate answer Flask's 500 HTML page.

CDB does *not* sanitise CR/LF or any other character. This stand-in reproduces that: refusing
such input is the console's job.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, cast
from urllib.parse import unquote, urlsplit

from tests.standins.server import StoppableServer

Semantics = Literal["mid", "new"]
Clock = Callable[[], datetime]

SEMANTICS: Final = ("mid", "new")
# KillSwitchReason in core/safety/kill_switch.py: what activate accepts (anything else -> "manual").
REASONS: Final = ("manual", "circuit_breaker", "risk_limit", "system_error", "exchange_error", "auth_failure")
SYSTEM_ERROR: Final = "system_error"

MSG_MISSING: Final = "State file missing"
MSG_EMPTY: Final = "Empty state file"
MSG_UNKNOWN: Final = "Unknown"  # [M]: no message key in the file (also garbage / no state key)
MSG_READ_ERROR: Final = "State file read error"
MSG_CORRUPT: Final = "Corrupt state file: missing state key"  # [N]
MSG_UNKNOWN_TOKEN_PREFIX: Final = "Unknown kill-switch state value: "  # [N]
MSG_INITIAL: Final = "Initial state"  # written by KillSwitch() when the file does not exist

HOST: Final = "127.0.0.1"
# docs/cdb/contracts.md 1.2 (see RiskServiceStandIn)
STATE_READ_FAILED: Final = {"error": "state_read_failed"}

# pathlib's _IGNORED_ERRNOS: a stat failing with these means "does not exist"; others raise.
_MISSING_ERRNOS: Final = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def utc_now() -> datetime:
    """CDB's ``core.utils.clock.utcnow()``: naive UTC (``datetime.utcnow()`` without the warning)."""
    return datetime.now(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillSwitchDetails:
    """What CDB's ``get_kill_switch_details()`` returns, and so what ``GET /kill-switch`` shows."""

    active: bool
    reason: str | None
    message: str
    activated_at: str | None

    def as_json(self) -> dict[str, Any]:
        """The body of ``GET /kill-switch`` (before jsonify sorts the keys)."""
        return {
            "active": self.active,
            "reason": self.reason,
            "message": self.message,
            "activated_at": self.activated_at,
        }


def state_file_exists(path: Path) -> bool:
    """``Path.exists()`` as CDB's Python 3.11 runs it: ENOENT/ENOTDIR/EBADF/ELOOP -> False.

    Any other ``OSError`` (EACCES on a parent directory, ENAMETOOLONG, ...) propagates.
    """
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno in _MISSING_ERRNOS:
            return False
        raise
    except ValueError:  # embedded NUL byte
        return False
    return True


def parse_state_lines(lines: Iterable[str]) -> dict[str, str]:
    """CDB's parser: strip each line, skip lines without ``=``, split on the first ``=``, strip key
    and value; a later duplicate key wins."""
    data: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line or "=" not in line:
            continue
        key, value = line.split("=", 1)
        data[key.strip()] = value.strip()
    return data


def parse_state_text(text: str) -> dict[str, str]:
    """:func:`parse_state_lines` on text, splitting lines as a text-mode read does (LF, CRLF, CR)."""
    return parse_state_lines(re.split(r"\r\n|\r|\n", text))


def _read_lines(path: Path) -> list[str]:
    # CDB: ``open(path, "r")`` with the image's UTF-8 locale; universal newlines; readlines().
    with open(path, encoding="utf-8") as fh:
        return fh.readlines()


def _details_from(data: Mapping[str, str], *, active: bool) -> KillSwitchDetails:
    # CDB get_state(): reason "none" or empty -> None; unknown values pass through (G.2 "pager");
    # a missing message reads "Unknown"; activated_at "none" -> None, anything else passes through.
    reason = data.get("reason")
    activated_at = data.get("activated_at")
    return KillSwitchDetails(
        active=active,
        reason=reason if reason and reason != "none" else None,
        message=data.get("message", MSG_UNKNOWN),
        activated_at=None if activated_at == "none" else activated_at,
    )


def read_state_mid(path: Path, *, clock: Clock = utc_now) -> KillSwitchDetails:
    """The mid-2026 reader [M]: fails open, except on an I/O error.

    | condition                      | active | reason       | message                     | activated_at |
    | missing                        | False  | None         | "State file missing"        | None         |
    | empty (0 bytes)                | False  | None         | "Empty state file"          | None         |
    | no ``state`` key / garbage     | False  | from file    | from file, else "Unknown"   | from file    |
    | state other than ``active``    | False  | from file    | from file, else "Unknown"   | from file    |
    | unreadable (directory, bad     | True   | system_error | "State file read error"     | now          |
    |   UTF-8, ...)                  |        |              |                             |              |

    Raises ``OSError`` when the existence check itself fails (see :func:`state_file_exists`).
    """
    if not state_file_exists(path):
        return KillSwitchDetails(False, None, MSG_MISSING, None)
    try:
        lines = _read_lines(path)
    except Exception:
        return KillSwitchDetails(True, SYSTEM_ERROR, MSG_READ_ERROR, clock().isoformat())
    if not lines:
        return KillSwitchDetails(False, None, MSG_EMPTY, None)
    data = parse_state_lines(lines)
    # Only exact lowercase "active" halts; "ACTIVE", "halted", a missing key: all inactive.
    return _details_from(data, active=data.get("state", "inactive") == "active")


def read_state_new(path: Path, *, clock: Clock = utc_now) -> KillSwitchDetails:
    """The later reader [N]: fails closed. Every fail-closed answer is
    ``active=True, reason="system_error", activated_at=now`` with these messages:

    missing "State file missing"; empty (0 bytes) "Empty state file"; no ``state`` key
    "Corrupt state file: missing state key"; state neither ``active`` nor ``inactive``
    "Unknown kill-switch state value: <token>"; unreadable "State file read error".

    Raises ``OSError`` when the existence check itself fails (see :func:`state_file_exists`).
    """
    if not state_file_exists(path):
        return KillSwitchDetails(True, SYSTEM_ERROR, MSG_MISSING, clock().isoformat())
    try:
        lines = _read_lines(path)
    except Exception:
        return KillSwitchDetails(True, SYSTEM_ERROR, MSG_READ_ERROR, clock().isoformat())
    if not lines:
        return KillSwitchDetails(True, SYSTEM_ERROR, MSG_EMPTY, clock().isoformat())
    data = parse_state_lines(lines)
    if "state" not in data:
        return KillSwitchDetails(True, SYSTEM_ERROR, MSG_CORRUPT, clock().isoformat())
    token = data["state"]
    if token not in ("active", "inactive"):
        return KillSwitchDetails(
            True, SYSTEM_ERROR, f"{MSG_UNKNOWN_TOKEN_PREFIX}{token}", clock().isoformat()
        )
    return _details_from(data, active=token == "active")


def read_state(path: Path, semantics: str, *, clock: Clock = utc_now) -> KillSwitchDetails:
    """:func:`read_state_mid` or :func:`read_state_new`."""
    if semantics == "mid":
        return read_state_mid(path, clock=clock)
    if semantics == "new":
        return read_state_new(path, clock=clock)
    raise ValueError(f"semantics must be one of {SEMANTICS}, not {semantics!r}")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def temp_path(path: Path) -> Path:
    """CDB's temp file: ``path.with_suffix(".tmp")``, e.g. ``.cdb_kill_switch.state`` ->
    ``.cdb_kill_switch.tmp``."""
    return path.with_suffix(".tmp")


def render_state(
    *, state: str, reason: str | None, message: str, activated_at: str | None, updated_at: str
) -> str:
    """The file format: five ``key=value`` lines in this order, each ending in LF. Nothing is
    escaped: a CR or LF in ``message`` becomes an extra line."""
    return (
        f"state={state}\n"
        f"reason={reason if reason else 'none'}\n"
        f"message={message}\n"
        f"activated_at={activated_at or 'none'}\n"
        f"updated_at={updated_at}\n"
    )


def write_state(
    path: Path,
    *,
    state: str,
    reason: str | None,
    message: str,
    activated_at: str | None,
    clock: Clock = utc_now,
) -> bool:
    """CDB's ``_write_state``: write ``<stem>.tmp`` beside the file, then rename it over the file.

    Returns whether the file was replaced. CDB only logs a failure, so every caller ignores this
    value, and a temp file whose rename failed stays behind (G.2).
    """
    try:
        updated_at = clock().isoformat()
        content = render_state(
            state=state, reason=reason, message=message, activated_at=activated_at, updated_at=updated_at
        )
        tmp = temp_path(path)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(content)
        tmp.replace(path)
    except Exception:
        return False
    return True


def ensure_state_file(path: Path, *, clock: Clock = utc_now) -> None:
    """``KillSwitch.__init__``: if the file does not exist, write an inactive "Initial state".

    Raises what :func:`state_file_exists` raises.
    """
    if not state_file_exists(path):
        write_state(path, state="inactive", reason=None, message=MSG_INITIAL, activated_at=None, clock=clock)


def activation_message(message: object, operator: object) -> str:
    """``f"{message} (operator: {operator})"`` when ``operator`` is truthy, else ``message``.

    Python formatting of whatever JSON gave: ``123`` -> ``"123"``, ``null`` message -> ``"None"``,
    an empty message -> ``" (operator: alice)"`` (leading space; the reader strips it back off).
    """
    return f"{message} (operator: {operator})" if operator else f"{message}"


def write_activation(
    path: Path,
    *,
    reason: str,
    message: object,
    operator: object = None,
    clock: Clock = utc_now,
) -> bool:
    """``KillSwitch(path).activate(reason, message, operator)``. Returns whether the write landed."""
    ensure_state_file(path, clock=clock)
    activated_at = clock().isoformat()  # taken before updated_at (G.1: .977981 then .977990)
    return write_state(
        path,
        state="active",
        reason=reason,
        message=activation_message(message, operator),
        activated_at=activated_at,
        clock=clock,
    )


def deactivation_message(operator: object, justification: object) -> str:
    return f"Deactivated by {operator}: {justification}"


def write_deactivation(
    path: Path, *, operator: object, justification: object, clock: Clock = utc_now
) -> bool:
    """``KillSwitch(path).deactivate(operator, justification)``: writes even when already inactive.

    Returns False without writing when either argument is falsy (CDB's own check), else whether the
    write landed.
    """
    ensure_state_file(path, clock=clock)
    if not operator or not justification:
        return False
    return write_state(
        path,
        state="inactive",
        reason=None,
        message=deactivation_message(operator, justification),
        activated_at=None,
        clock=clock,
    )


# ---------------------------------------------------------------------------------------------
# HTTP pieces: Flask's jsonify, Werkzeug's error pages, the /metrics exposition
# ---------------------------------------------------------------------------------------------

JSON_TYPE: Final = "application/json"
HTML_TYPE: Final = "text/html; charset=utf-8"
TEXT_TYPE: Final = "text/plain; charset=utf-8"

# Route -> methods the view declares. Flask adds OPTIONS everywhere and HEAD wherever GET is.
ROUTES: Final[Mapping[str, tuple[str, ...]]] = {
    "/health": ("GET",),
    "/status": ("GET",),
    "/metrics": ("GET",),
    "/kill-switch": ("GET",),
    "/kill-switch/activate": ("POST",),
    "/kill-switch/deactivate": ("POST",),
}


@dataclass(frozen=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def jsonify_bytes(obj: object) -> bytes:
    """Flask's ``jsonify`` outside debug mode: sorted keys, compact, ASCII-escaped, trailing LF."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def _json(obj: object, status: int = 200) -> _Response:
    return _Response(status, JSON_TYPE, jsonify_bytes(obj))


def werkzeug_error_page(code: int, name: str, description: str) -> bytes:
    """Werkzeug's ``HTTPException.get_body()``."""
    return (
        "<!doctype html>\n"
        "<html lang=en>\n"
        f"<title>{code} {name}</title>\n"
        f"<h1>{name}</h1>\n"
        f"<p>{description}</p>\n"
    ).encode()


PAGE_404: Final = werkzeug_error_page(
    404,
    "Not Found",
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again.",
)
PAGE_405: Final = werkzeug_error_page(
    405, "Method Not Allowed", "The method is not allowed for the requested URL."
)
PAGE_500: Final = werkzeug_error_page(
    500,
    "Internal Server Error",
    "The server encountered an internal error and was unable to complete your request. Either the "
    "server is overloaded or there is an error in the application.",
)


def flask_get_json_silent(content_type: str | None, body: bytes) -> Any:
    """``request.get_json(silent=True)``: parse only for ``application/json`` or
    ``application/*+json`` (any case, parameters ignored); anything unparsable gives None."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if not (mimetype == JSON_TYPE or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        return None
    try:
        return json.loads(body)  # bytes: UTF-8/16/32 detected, as Flask does
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None


# (name, type, help) in CDB's order; G.1 shows the exposition verbatim.
_METRICS: Final = (
    ("signals_received_total", "counter", "Signals empfangen (Redis PubSub)"),
    ("orders_approved_total", "counter", "Orders freigegeben"),
    ("orders_blocked_total", "counter", "Orders blockiert (Risk Checks)"),
    ("orders_skipped_total", "counter", "Orders übersprungen (qty=0, parse errors)"),
    ("circuit_breaker_active", "gauge", "Circuit Breaker Status"),
    ("order_results_received_total", "counter", "Anzahl verarbeiteter Order-Result Events"),
    ("orders_rejected_execution_total", "counter", "Abgelehnte Orders durch Execution-Service"),
    ("risk_pending_orders_total", "gauge", "Anzahl offener Auftragsbestätigungen"),
    ("risk_total_exposure_value", "gauge", "Gesamtposition (Notional)"),
    (
        "risk_reduce_only_approved_total",
        "counter",
        "Reduce-only SELL orders approved while over exposure limit",
    ),
    (
        "risk_proactive_unwind_triggered_total",
        "counter",
        "Proactive auto-unwind triggers (SELL orders generated when over limit)",
    ),
    ("risk_alerts_generated_total", "counter", "Alerts published to alerts topic"),
    (
        "risk_kill_switch_active",
        "gauge",
        "Kill-switch state (1=active/trading halted, 0=inactive/unknown)",
    ),
)


def render_metrics(stats: Mapping[str, Any], risk_state: Mapping[str, Any], kill_switch_active: int) -> str:
    """CDB's hand-written exposition: HELP, TYPE, sample; a blank line between metrics."""
    values: dict[str, object] = {
        "signals_received_total": stats["signals_received"],
        "orders_approved_total": stats["orders_approved"],
        "orders_blocked_total": stats["orders_blocked"],
        "orders_skipped_total": stats["orders_skipped"],
        "circuit_breaker_active": 1 if risk_state["circuit_breaker"] else 0,
        "order_results_received_total": stats["order_results_received"],
        "orders_rejected_execution_total": stats["orders_rejected_execution"],
        "risk_pending_orders_total": risk_state["pending_orders"],
        "risk_total_exposure_value": risk_state["total_exposure"],
        "risk_reduce_only_approved_total": stats.get("reduce_only_approved", 0),
        "risk_proactive_unwind_triggered_total": stats.get("proactive_unwind_triggered", 0),
        "risk_alerts_generated_total": stats["alerts_generated"],
        "risk_kill_switch_active": kill_switch_active,
    }
    return "\n".join(
        f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {values[name]}\n"
        for name, kind, help_text in _METRICS
    )


def initial_stats(*, running: bool, started_at: str | None) -> dict[str, Any]:
    """The risk manager's ``stats`` dict (G.1 shows it as /status before the manager runs)."""
    return {
        "started_at": started_at,
        "signals_received": 0,
        "orders_approved": 0,
        "orders_blocked": 0,
        "orders_skipped": 0,
        "alerts_generated": 0,
        "order_results_received": 0,
        "orders_rejected_execution": 0,
        "last_order_result": None,
        "status": "running" if running else "initializing",
    }


def initial_risk_state() -> dict[str, Any]:
    return {
        "total_exposure": 0.0,
        "daily_pnl": 0.0,
        "open_positions": 0,
        "signals_approved": 0,
        "signals_blocked": 0,
        "circuit_breaker": False,
        "positions": {},
        "pending_orders": 0,
        "last_prices": {},
    }


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received (recorded before any delay or fault is applied)."""

    method: str
    path: str  # as sent, query string included
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class _Server(StoppableServer):
    def __init__(self, port: int, standin: RiskServiceStandIn) -> None:
        super().__init__((HOST, port), _Handler, standin)
        self.standin: RiskServiceStandIn = standin


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so stop() leaves no idle keep-alive socket behind.
    protocol_version = "HTTP/1.0"
    server_version = "cdb-risk-standin"
    timeout = 30  # seconds a client may take to send its request

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows stderr of failing tests, and access logs would drown it."""

    def handle(self) -> None:
        with suppress(OSError):  # client went away, or stop() cut the connection
            super().handle()

    def _dispatch(self) -> None:
        server = self._server
        body = self._read_body()
        if server.stopping.is_set():
            self.close_connection = True
            return
        request = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        response = server.standin._serve(request, server)
        if response is None:  # stopped while delayed: drop the connection without an answer
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            try:
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                return b"".join(chunks)
            if size == 0:
                trailer = self.rfile.readline(65537)
                while trailer not in (b"\r\n", b"\n", b""):
                    trailer = self.rfile.readline(65537)
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)


class RiskServiceStandIn:
    """CDB's risk service HTTP API on ``127.0.0.1:<free port>``, backed by a real state file.

    ``semantics`` picks the kill-switch reader: ``"mid"`` ([M], fails open) or ``"new"`` ([N],
    fails closed). ``clock`` (naive UTC) stamps ``activated_at``/``updated_at`` and the "now" of
    fail-closed answers.

    Endpoints: ``GET /health``, ``GET /status``, ``GET /metrics``, ``GET /kill-switch``,
    ``POST /kill-switch/activate``, ``POST /kill-switch/deactivate``; HEAD and OPTIONS as Flask
    adds them; other methods answer 405 and unknown paths 404 (Werkzeug's HTML pages).

    The risk manager behind /health, /status and /metrics reports ``"running"`` by default (G.6,
    Tier 2). ``set_stats(status="initializing", started_at=None)`` gives the Tier 1 view of G.1,
    where /health says ``"error"``.

    Test controls (all thread-safe): :meth:`fail_next_get`, :meth:`set_delay`, :meth:`stop` and
    :meth:`start` (same port), :meth:`set_stats` and :meth:`set_risk_state`, and :attr:`requests`.
    """

    def __init__(
        self,
        state_file: Path | str,
        semantics: str = "mid",
        *,
        clock: Clock = utc_now,
    ) -> None:
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, not {semantics!r}")
        self.state_file = Path(state_file)
        self.semantics: Semantics = cast(Semantics, semantics)
        self.clock = clock
        self._lock = threading.Lock()  # guards the test controls, stats and the request log
        # Serialises each request's read-modify-read of the state file. Real CDB has no such lock;
        # here each reply is deterministic.
        self._file_lock = threading.Lock()
        self._lifecycle = threading.Lock()  # start/stop
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._get_failures: list[int] = []
        self._get_answer: tuple[int, bytes] | None = None
        self._hold: tuple[threading.Event, threading.Event] | None = None  # (held, released)
        self._delay = 0.0
        self._stats = initial_stats(running=True, started_at=clock().isoformat())
        self._risk_state = initial_risk_state()
        self._requests: list[RecordedRequest] = []

    # -- lifecycle --

    def start(self) -> Self:
        """Listen (again). The first start takes a free port; later starts reuse it."""
        with self._lifecycle:
            if self._server is not None:
                return self
            server = _Server(self._port or 0, self)
            self._port = server.server_address[1]
            thread = server.serve_in_thread(f"risk-standin-{self._port}")
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        """Stop listening, and cut open connections (a delayed request gets no answer at all).

        Connections to the port are refused until :meth:`start`. When this returns, no request
        is still touching the state file.
        """
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            server.stopping.set()
            server.shutdown()
            server.server_close()
            server.drop_connections(timeout=10)
            thread.join(timeout=10)
            self._server = self._thread = None

    close = stop

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the stand-in has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; stays the same across stop()/start()."""
        return f"http://{HOST}:{self.port}"

    # -- test controls --

    def fail_next_get(self, status: int = 500, times: int = 1) -> None:
        """The next ``times`` ``GET /kill-switch`` answer ``{"error":"state_read_failed"}`` with
        ``status``, without reading the file."""
        with self._lock:
            self._get_failures.extend([status] * times)

    def answer_get(self, body: bytes | None, status: int = 200) -> None:
        """Answer every ``GET /kill-switch`` with these bytes (as ``application/json``) instead of
        the state file, until called with ``None``: any answer a broken or foreign service gives."""
        with self._lock:
            self._get_answer = None if body is None else (status, body)

    def hold_answers(self) -> None:
        """Handle each request at once (the state file is read now) but hold its answer until
        :meth:`release_answers`: a slow network after the read, so the answer is old when it lands."""
        with self._lock:
            self._hold = (threading.Event(), threading.Event())

    def wait_held(self, timeout: float) -> bool:
        """Wait until an answer is being held (its request handled); False after ``timeout``."""
        with self._lock:
            hold = self._hold
        return hold is not None and hold[0].wait(timeout)

    def release_answers(self, *, hold_more: bool = False) -> None:
        """Send the held answers; later ones are held too only with ``hold_more``."""
        with self._lock:
            hold = self._hold
            self._hold = (threading.Event(), threading.Event()) if hold_more else None
        if hold is not None:
            hold[1].set()

    def set_delay(self, seconds: float) -> None:
        """Hold every request this long before handling it (0 turns it off). The request is then
        handled even if the client gave up, so a timed-out activate still takes effect. Only
        :meth:`stop` during the delay drops it unhandled."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._delay = float(seconds)

    def set_stats(self, **values: Any) -> None:
        """Update the risk manager's ``stats`` (``status``, ``started_at``, counters, ...)."""
        with self._lock:
            self._stats.update(values)

    def set_risk_state(self, **values: Any) -> None:
        """Update ``risk_state`` (``circuit_breaker``, ``total_exposure``, ``positions``, ...)."""
        with self._lock:
            self._risk_state.update(values)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def read_state(self) -> KillSwitchDetails:
        """What ``GET /kill-switch`` would answer now (ignores faults). May raise ``OSError``."""
        with self._file_lock:
            return read_state(self.state_file, self.semantics, clock=self.clock)

    # -- request handling --

    def _serve(self, request: RecordedRequest, server: _Server) -> _Response | None:
        method, body = request.method, request.body
        content_type = request.header("Content-Type")
        with self._lock:
            self._requests.append(request)
            delay = self._delay
        if delay > 0 and server.stopping.wait(delay):
            return None
        if server.stopping.is_set():
            return None
        path = unquote(urlsplit(request.path).path)
        declared = ROUTES.get(path)
        if declared is None:
            return _Response(404, HTML_TYPE, PAGE_404)
        allowed = {*declared, "OPTIONS", *(("HEAD",) if "GET" in declared else ())}
        allow_header = (("Allow", ", ".join(sorted(allowed))),)
        if method == "OPTIONS":
            return _Response(200, HTML_TYPE, b"", allow_header)
        if method not in allowed:
            return _Response(405, HTML_TYPE, PAGE_405, allow_header)
        try:
            response = self._view(path, method, content_type, body)
        except Exception:  # any uncaught exception in a Flask view
            return _Response(500, HTML_TYPE, PAGE_500)
        with self._lock:
            hold = self._hold
        if hold is not None:
            hold[0].set()
            while not hold[1].wait(0.05):
                if server.stopping.is_set():
                    return None
        return response

    def _view(self, path: str, method: str, content_type: str | None, body: bytes) -> _Response:
        if path == "/health":
            with self._lock:
                running = self._stats.get("status") == "running"
            return _json(
                {"status": "ok" if running else "error", "service": "risk_manager", "version": "0.1.0"}
            )
        if path == "/status":
            with self._lock:
                payload = {**self._stats, "risk_state": dict(self._risk_state)}
            return _json(payload)
        if path == "/metrics":
            return self._metrics()
        if path == "/kill-switch":
            return self._kill_switch_get(method)
        if path == "/kill-switch/activate":
            return self._activate(flask_get_json_silent(content_type, body) or {})
        return self._deactivate(flask_get_json_silent(content_type, body) or {})

    def _metrics(self) -> _Response:
        try:
            ks_active = 1 if self.read_state().active else 0
        except Exception:
            ks_active = 0  # CDB: "conservative: report inactive on read failure"
        with self._lock:
            stats, risk_state = dict(self._stats), dict(self._risk_state)
        return _Response(200, TEXT_TYPE, render_metrics(stats, risk_state, ks_active).encode())

    def _kill_switch_get(self, method: str) -> _Response:
        with self._lock:
            fail_status = self._get_failures.pop(0) if method == "GET" and self._get_failures else None
            answer = self._get_answer
        if answer is not None and fail_status is None:
            return _Response(answer[0], JSON_TYPE, answer[1])
        if fail_status is not None:
            return _json(STATE_READ_FAILED, fail_status)
        try:
            details = self.read_state()
        except Exception:
            # CDB: the existence check raised (EACCES, ENAMETOOLONG, ...). docs/cdb/contracts.md 1.2
            # gives this body; one upstream revision puts the exception text in it instead
            # ({"error": "state read failed: <exc>"}), so clients must not rely on the wording.
            return _json(STATE_READ_FAILED, 500)
        return _json(details.as_json())

    def _activate(self, body: Any) -> _Response:
        # A truthy non-object body (``[1,2]``, ``"x"``, ``5``) has no .get(): Flask's 500 page
        # (G.7). A falsy one (``[]``, ``0``, ``null``) became {} above: 400.
        if not isinstance(body, dict):
            return _Response(500, HTML_TYPE, PAGE_500)
        reason_in = body.get("reason", "manual")
        message = body.get("message", "")
        operator = body.get("operator", "")
        if not operator:
            return _json({"error": "operator required"}, 400)
        # KillSwitchReason(value) or MANUAL: only the exact six strings; anything else (unknown
        # text, null, a number, a list) silently becomes "manual".
        reason = reason_in if isinstance(reason_in, str) and reason_in in REASONS else "manual"
        with self._file_lock:
            # Write failures are swallowed, so the reply is always 200 and shows the re-read state
            # (G.2 "try while unwritable"); only "active": true is hard-coded.
            write_activation(
                self.state_file, reason=reason, message=message, operator=operator, clock=self.clock
            )
            after = read_state(self.state_file, self.semantics, clock=self.clock)
        return _json(
            {
                "active": True,
                "activated": True,
                "reason": after.reason,
                "activated_at": after.activated_at,
                "message": after.message,
            }
        )

    def _deactivate(self, body: Any) -> _Response:
        if not isinstance(body, dict):
            return _Response(500, HTML_TYPE, PAGE_500)
        operator = body.get("operator", "")
        justification = body.get("justification", "")
        if not operator or not justification:
            return _json({"error": "operator and justification required"}, 400)
        with self._file_lock:
            write_deactivation(
                self.state_file, operator=operator, justification=justification, clock=self.clock
            )
            after = read_state(self.state_file, self.semantics, clock=self.clock)
        # "active" is the re-read state: true when the file is unreadable (G.2) or when an
        # injected line made it so.
        return _json({"deactivated": True, "active": after.active})
