"""The HTTP server under every stand-in: threaded, and able to cut its connections when stopped."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StoppableServer(ThreadingHTTPServer):
    """One run of a stand-in. It tracks its connections so that stopping can cut them."""

    daemon_threads = True
    # Werkzeug's listen backlog (socketserver's default of 5 drops SYNs under a burst of clients,
    # which then wait 1-3 s to retry).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: Any) -> None:
        self.standin = standin
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._cond = threading.Condition()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._cond:
            self._connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._cond:
                self._connections.discard(request)
                self._cond.notify_all()

    def serve_in_thread(self, name: str) -> threading.Thread:
        """Serve from a daemon thread that notices shutdown() within 50 ms."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        thread.start()
        return thread

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Dropped and timed-out connections are the point of stopping and slow modes; keep quiet."""

    def drop_connections(self, timeout: float) -> None:
        """Cut every open connection, then wait for their handler threads to end."""
        with self._cond:
            for conn in self._connections:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._cond.wait_for(lambda: not self._connections, timeout)
