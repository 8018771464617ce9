"""Local stand-ins for the /health endpoints of CDB's services (docs/cdb/contracts.md, section 2),
for the tests.

One :class:`HealthStandIn` is one CDB service on ``127.0.0.1:<free port>``. It answers ``GET <path>``
with the body its kind really sends, in the mode the test sets:

| mode             | answer                                                                        |
|------------------|-------------------------------------------------------------------------------|
| ``healthy``        | the kind's healthy body, 200                                                |
| ``200-with-error`` | the kind's unhealthy body with 200 (what most CDB services do)              |
| ``503``            | the kind's unhealthy body with 503 (what market, regime, paper_runner do)   |
| ``slow``           | the healthy body, after ``delay`` seconds (beyond the checker's timeout)    |
| ``garbage``        | 200, ``Content-Type: application/json``, a body that is not JSON            |
| ``stopped``        | nothing listens: connections are refused until another mode starts it again |

"Unhealthy body" is the contract's non-ok value for the kind: ``degraded`` for market, ``error`` for
most, ``stopped`` for paper_runner, ``ws_connected: false`` for ws (whose status stays "healthy"),
``database: failing`` for Grafana. Execution's body is static in CDB ("ok" always); its unhealthy body
here (``error``) is the stand-in's own. Prometheus's ``/-/healthy`` is plain text.

A kind with a ``/status`` (execution) answers it with the captured body, its counters set by
:meth:`HealthStandIn.set_status_stats`. Other paths answer 404 (JSON). Restarting after
``stopped`` reuses the same port.
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Final, Self, cast

from tests.standins.server import StoppableServer

HOST: Final = "127.0.0.1"
JSON: Final = "application/json"
TEXT: Final = "text/plain; charset=utf-8"
GARBAGE: Final = b'<html><body>502 Bad Gateway</body></html>\x00\xff{"status":'


class Mode(StrEnum):
    HEALTHY = "healthy"
    ERROR = "200-with-error"
    UNAVAILABLE = "503"
    SLOW = "slow"
    GARBAGE = "garbage"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Kind:
    """One kind of CDB service: its container name, port and path in the stack, and its two bodies."""

    name: str
    port: int
    path: str
    healthy: bytes
    unhealthy: bytes
    content_type: str = JSON
    status: dict[str, Any] | None = None  # its GET /status body, where the service has one


KINDS: Final[dict[str, Kind]] = {
    k.name.removeprefix("cdb_"): k
    for k in (
        Kind(
            "cdb_market",
            8009,
            "/health",
            _json({"status": "healthy", "service": "market_data", "detail": []}),
            _json({"status": "degraded", "service": "market_data", "detail": ["BTCUSDT: no trade for 95 s"]}),
        ),
        Kind(
            "cdb_candles",
            8007,
            "/health",
            _json({"status": "ok", "service": "candle_service", "version": "1"}),
            _json({"status": "error", "service": "candle_service", "version": "1"}),
        ),
        Kind(
            "cdb_regime",
            8008,
            "/health",
            _json({"status": "ok", "heartbeat_age_seconds": 1.5, "consumer_errors": 0, "last_error": ""}),
            _json(
                {
                    "status": "error",
                    "heartbeat_age_seconds": 184.2,
                    "consumer_errors": 3,
                    "last_error": "stream read timed out",
                }
            ),
        ),
        Kind(
            "cdb_allocation",
            8006,
            "/health",
            _json({"status": "ok", "service": "allocation_service"}),
            _json({"status": "error", "service": "allocation_service"}),
        ),
        # Flask's jsonify sorts keys: the captured body (http-transcripts G.1, G.6).
        Kind(
            "cdb_risk",
            8002,
            "/health",
            _json({"service": "risk_manager", "status": "ok", "version": "0.1.0"}),
            _json({"service": "risk_manager", "status": "error", "version": "0.1.0"}),
        ),
        Kind(
            "cdb_execution",
            8003,
            "/health",
            _json({"service": "execution_service", "status": "ok", "version": "0.1.0"}),
            _json({"service": "execution_service", "status": "error", "version": "0.1.0"}),
            # Captured from a running stack (the contract's execution_status.json).
            status={
                "database": {"filled": 0, "pending": 0, "rejected": 0, "total": 10504},
                "mode": "mock",
                "redis": {"connected": True},
                "service": "execution_service",
                "stats": {
                    "invalid_payloads": 0,
                    "last_result": None,
                    "orders_filled": 0,
                    "orders_received": 0,
                    "orders_rejected": 0,
                    "shadow_blocked": 0,
                    "start_time": "2026-04-01T09:45:44.298155",
                },
                "version": "0.1.0",
            },
        ),
        Kind(
            "cdb_paper_runner",
            8004,
            "/health",
            _json({"status": "ok", "service": "paper_trading_runner"}),
            _json({"status": "stopped", "service": "paper_trading_runner"}),
        ),
        Kind(
            "cdb_ws",
            8000,
            "/health",
            _json(
                {
                    "status": "healthy",
                    "ws_connected": True,
                    "last_message_age_ms": 240,
                    "redis_connected": True,
                }
            ),
            _json(
                {
                    "status": "healthy",
                    "ws_connected": False,
                    "last_message_age_ms": 61_000,
                    "redis_connected": True,
                }
            ),
        ),
        Kind(
            "cdb_signal",
            8005,
            "/health",
            _json({"status": "ok", "service": "signal_engine"}),
            _json({"status": "error", "service": "signal_engine"}),
        ),
        Kind(
            "cdb_prometheus",
            19090,
            "/-/healthy",
            b"Prometheus Server is Healthy.\n",
            b"Service Unavailable\n",
            content_type=TEXT,
        ),
        Kind(
            "cdb_grafana",
            3000,
            "/api/health",
            _json({"commit": "0a1b2c3", "database": "ok", "version": "11.2.0"}),
            _json({"commit": "0a1b2c3", "database": "failing", "version": "11.2.0"}),
        ),
    )
}


def answer_for(kind: Kind, mode: Mode) -> Answer:
    """What the stand-in answers in `mode` (SLOW: the answer after the delay)."""
    if mode in (Mode.HEALTHY, Mode.SLOW):
        return Answer(200, kind.healthy, kind.content_type)
    if mode == Mode.ERROR:
        return Answer(200, kind.unhealthy, kind.content_type)
    if mode == Mode.UNAVAILABLE:
        return Answer(503, kind.unhealthy, kind.content_type)
    if mode == Mode.GARBAGE:
        return Answer(200, GARBAGE, JSON)
    raise ValueError(f"a stopped service does not answer ({mode})")


class _Server(StoppableServer):
    def __init__(self, port: int, standin: HealthStandIn) -> None:
        super().__init__((HOST, port), _Handler, standin)
        self.standin: HealthStandIn = standin


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: stopping leaves no idle socket
    server_version = "cdb-health-standin"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: access logs would drown a failing test's output."""

    def handle(self) -> None:
        with suppress(OSError):
            super().handle()

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        answer = server.standin._answer(self.path.split("?", 1)[0], server)
        if answer is None:  # stopped during the delay: no answer at all
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Connection", "close")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)


class HealthStandIn:
    """One CDB service's /health on ``127.0.0.1:<free port>``; ``kind`` is a key of :data:`KINDS`
    (``risk``, ``market``, ``ws``, ...). Controls are thread-safe: :meth:`set_mode`, :attr:`delay`
    (seconds the slow mode waits), :meth:`set_answer` (any status and body), :attr:`hits`."""

    def __init__(self, kind: str, mode: Mode | str = Mode.HEALTHY, *, delay: float = 2.0) -> None:
        self.kind = KINDS[kind]
        self.delay = delay
        self._mode = Mode(mode)
        self._custom: Answer | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._hits = 0
        self._status = json.loads(json.dumps(self.kind.status)) if self.kind.status else None

    # -- lifecycle --

    def start(self) -> Self:
        """Listen (again): the first start takes a free port, later starts reuse it."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server(self._port or 0, self)
            self._port = server.server_address[1]
            thread = server.serve_in_thread(f"health-standin-{self.kind.name}-{self._port}")
            self._server, self._thread = server, thread
            if self._mode == Mode.STOPPED:
                self._mode = Mode.HEALTHY
            return self

    def stop(self) -> None:
        """Stop listening and cut open connections: the port refuses connections until start()."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._mode = Mode.STOPPED
        if server is None or thread is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections(timeout=10)
        thread.join(timeout=10)

    def __enter__(self) -> Self:
        if self._mode == Mode.STOPPED:
            self._port = self._free_port()
            return self
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            return int(sock.getsockname()[1])

    # -- where it answers --

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the stand-in has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The health URL (``http://127.0.0.1:<port>/health``); the same across stop and start."""
        return self.base_url + self.kind.path

    # -- controls --

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode | str) -> None:
        """Switch mode; ``stopped`` stops the server, any other mode starts it if it was stopped."""
        mode = Mode(mode)
        if mode == Mode.STOPPED:
            self.stop()
            return
        with self._lock:
            self._custom = None
            self._mode = mode
        self.start()

    def set_answer(
        self,
        status: int,
        body: bytes | dict[str, Any],
        content_type: str = JSON,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer exactly this (with these extra headers, e.g. a redirect's Location) until the next
        set_mode()."""
        raw = _json(body) if isinstance(body, dict) else body
        with self._lock:
            self._custom = Answer(status, raw, content_type, headers)

    def set_status_stats(self, **stats: Any) -> None:
        """Update the counters of the kind's /status `stats` (execution's `orders_rejected`, ...)."""
        with self._lock:
            if self._status is None:
                raise ValueError(f"{self.kind.name} has no /status")
            self._status["stats"].update(stats)

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    # -- serving --

    def _answer(self, path: str, server: _Server) -> Answer | None:
        with self._lock:
            self._hits += 1
            mode, custom, delay = self._mode, self._custom, self.delay
        if path == "/status" and self._status is not None and mode != Mode.STOPPED:
            with self._lock:
                return Answer(200, _json(self._status))
        if path != self.kind.path:
            return Answer(404, _json({"error": "not found"}))
        if custom is not None:
            return custom
        if mode == Mode.SLOW and server.stopping.wait(delay):
            return None
        if mode == Mode.STOPPED:  # stopping: the server is about to close
            return None
        return answer_for(self.kind, mode)
