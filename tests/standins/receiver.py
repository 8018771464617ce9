"""A local HTTP receiver standing in for chat webhooks (Slack/Discord/Teams-style JSON posts) and
people's personal webhooks, for the tests and bench/escalation.py.

It records every request (time, path, headers, JSON body) and answers as its mode says: ``ok`` (200),
``fail`` (500 every time), ``hold`` (accepts the request, then waits until released or `hold_seconds`
pass before answering 200: a slow receiver, or a send that a worker dies in the middle of).
`unique_keys()` counts distinct X-Idempotency-Key headers: what a deduplicating receiver keeps.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

from tests.standins.server import StoppableServer


@dataclass(frozen=True)
class Received:
    at: float  # time.time()
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def key(self) -> str:
        return self.headers.get("X-Idempotency-Key", "")


@dataclass
class Receiver:
    mode: str = "ok"
    hold_seconds: float = 30.0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: StoppableServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def apprise_url(self, path: str = "/hook") -> str:
        """The receiver as an Apprise generic JSON webhook."""
        return self.url.replace("http://", "json://") + path

    def start(self) -> Self:
        self._server = StoppableServer(("127.0.0.1", 0), _Handler, self)
        self._server.serve_in_thread("receiver")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._release.set()
            self._server.shutdown()
            self._server.drop_connections(2)
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def release(self) -> None:
        self._release.set()

    def record(self, item: Received) -> None:
        with self._arrived:
            self.received.append(item)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until at least `count` requests arrived (or fail the test)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"receiver got {len(self.received)} requests, expected {count}")
            return list(self.received)

    def unique_keys(self) -> set[str]:
        return {r.key for r in self.received}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver: Receiver = self.server.standin  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        receiver.record(Received(time.time(), self.path, dict(self.headers.items()), body))
        if receiver.mode == "hold":
            receiver._release.wait(receiver.hold_seconds)
        status = 500 if receiver.mode == "fail" else 200
        payload = b'{"error":"down"}' if status == 500 else b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
