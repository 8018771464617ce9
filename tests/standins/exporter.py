"""A tiny local exporter serving CDB's real metric names (docs/cdb/contracts.md, section 3), for the
test suite.

One instance stands in for one CDB service's ``/metrics`` (a Prometheus job): ``ExporterStandIn.risk()``
serves ``risk_kill_switch_active``, ``circuit_breaker_active`` and ``orders_blocked_total`` as
``cdb_risk`` does; ``.execution()`` and ``.signal()`` serve the execution and signal engine counters.
Values are settable (gauges) or can be increased (counters). Built on ``prometheus_client`` with a
private registry (nothing global), on 127.0.0.1 and a free port; ``stop()`` then ``start()`` serves
again on the same port, as a restarted service would.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Final, Literal, Self
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

HOST: Final = "127.0.0.1"
Kind = Literal["gauge", "counter"]

# CDB's metric names, by the Prometheus job that exposes them, with their type.
RISK_METRICS: Final[Mapping[str, Kind]] = {
    "risk_kill_switch_active": "gauge",
    "circuit_breaker_active": "gauge",
    "orders_blocked_total": "counter",
}
EXECUTION_METRICS: Final[Mapping[str, Kind]] = {
    "execution_orders_received_total": "counter",
    "execution_orders_rejected_total": "counter",
}
SIGNAL_METRICS: Final[Mapping[str, Kind]] = {"signal_errors_total": "counter"}


class ExporterStandIn:
    def __init__(self, job: str, metrics: Mapping[str, Kind], port: int = 0) -> None:
        self.job = job
        self.port = port
        self.registry = CollectorRegistry(auto_describe=True)
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        for name, kind in metrics.items():
            doc = f"CDB {job} metric {name} (test stand-in)"
            if kind == "gauge":
                self._gauges[name] = Gauge(name, doc, registry=self.registry)
            else:
                # prometheus_client adds the _total suffix itself.
                self._counters[name] = Counter(name.removesuffix("_total"), doc, registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def risk(cls) -> ExporterStandIn:
        return cls("cdb_risk", RISK_METRICS)

    @classmethod
    def execution(cls) -> ExporterStandIn:
        return cls("cdb_execution", EXECUTION_METRICS)

    @classmethod
    def signal(cls) -> ExporterStandIn:
        return cls("cdb_signal", SIGNAL_METRICS)

    # -- values ---------------------------------------------------------------------------------

    def set(self, name: str, value: float) -> None:
        """Set a gauge (counters only go up: use inc)."""
        try:
            self._gauges[name].set(value)
        except KeyError:
            raise KeyError(f"{self.job} has no gauge {name!r} (gauges: {sorted(self._gauges)})") from None

    def inc(self, name: str, amount: float = 1) -> None:
        try:
            self._counters[name].inc(amount)
        except KeyError:
            raise KeyError(
                f"{self.job} has no counter {name!r} (counters: {sorted(self._counters)})"
            ) from None

    # -- serving --------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """host:port, as a Prometheus static_config target."""
        if not self.port:
            raise RuntimeError("start() the exporter first: its port is chosen then")
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        if self._server is None:
            self._server, self._thread = start_http_server(self.port, addr=HOST, registry=self.registry)
            self.port = self._server.server_port
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
