"""A real Prometheus (Debian's ``prometheus`` package) for the test suite.

``PrometheusStandIn`` writes a throw-away config (scrape every second, one job per exporter, no
rule files, no Alertmanager, no remote read or write), starts ``prometheus`` on a free
127.0.0.1 port with a temporary TSDB directory, waits until ``/-/ready`` answers and every
target has been scraped once, and stops it (SIGTERM, then SIGKILL) at the end. ``stop()`` then
``start()`` brings it back on the same port and storage, as a restarted Prometheus would.

A missing binary fails the test with the Makefile target that installs it: nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import pytest

HOST: Final = "127.0.0.1"
BINARY_ENV: Final = "PROMETHEUS_BINARY"
MISSING: Final = (
    "The Prometheus tests need a real Prometheus server and `{binary}` was not found. "
    "Install it with `make prometheus` (Debian's `prometheus` package), "
    "or point ${env} at a prometheus binary."
)


def prometheus_binary() -> str:
    """The prometheus executable; fails the calling test (never skips) when it is missing."""
    wanted = os.environ.get(BINARY_ENV, "prometheus")
    found = shutil.which(wanted) or next(
        (p for p in ("/usr/bin/prometheus", "/usr/local/bin/prometheus") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(MISSING.format(binary=wanted, env=BINARY_ENV), pytrace=False)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def render_config(targets: Mapping[str, str], scrape_interval: str = "1s") -> str:
    """A prometheus.yml: one static job per target (job name -> host:port). JSON is valid YAML."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": [target], "labels": {"instance": job}}],
            }
            for job, target in targets.items()
        ],
    }
    return json.dumps(config, indent=2)


class PrometheusStandIn:
    def __init__(self, targets: Mapping[str, str], workdir: Path, *, port: int = 0) -> None:
        self.targets = dict(targets)
        self.workdir = workdir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.config_file = workdir / "prometheus.yml"
        self.storage = workdir / "data"
        self.log_file = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 20.0, *, wait_for_scrape: bool = True) -> Self:
        """Start and wait until ready and (unless told not to) every target was scraped once.

        The first scrape comes ~5 s after start: Prometheus throttles service-discovery updates.
        """
        if self.process is not None:
            return self
        binary = prometheus_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        self.config_file.write_text(render_config(self.targets))
        self.port = self.port or free_port()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.storage}",
                    f"--web.listen-address={HOST}:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--query.timeout=10s",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        try:
            self._wait(lambda: self._http(f"{self.url}/-/ready") is not None, timeout, "to be ready")
            if wait_for_scrape and self.targets:
                # Every target scraped once (up is 1 or 0 for each job): queries see real data.
                self.wait_for(
                    "count(up)", lambda samples: bool(samples) and samples[0][1] >= len(self.targets), timeout
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- querying (plain urllib: independent of the code under test) ---------------------------

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = self._http(url)
        if body is None:
            return []
        data = json.loads(body)["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[tuple[dict[str, str], float]]], bool],
        timeout: float = 15.0,
    ) -> list[tuple[dict[str, str], float]]:
        """Poll `expr` until `predicate(samples)` is true (e.g. the next scrape saw a new value)."""
        result: list[Any] = []

        def check() -> bool:
            nonlocal result
            result = self.query(expr)
            return predicate(result)

        self._wait(check, timeout, f"for {expr!r} to satisfy the test's condition (last: {result})")
        return result

    def _http(self, url: str) -> bytes | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback http)
                return bytes(response.read())
        except (urllib.error.URLError, OSError):
            return None

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            if condition():
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"Prometheus at {self.url} did not get {what} within {timeout} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
