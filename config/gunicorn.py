"""gunicorn settings for the console's web processes: `gunicorn -c config/gunicorn.py` (the Procfile's
`web`, and bench/ingest.py, which measures with them). Environment: BIND, WEB_CONCURRENCY (processes),
WEB_THREADS (threads per process), WEB_ACCESS_LOG (a path, - for standard output, empty for none),
WEB_CONTROL_SOCKET (a path for this instance's control socket, for `gunicornc -s PATH`; empty: none),
PROMETHEUS_MULTIPROC_DIR (where the processes keep their /metrics counters; default: a fresh temporary
directory per instance)."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any

wsgi_app = "config.wsgi:application"
bind = os.environ.get("BIND", "0.0.0.0:8000")
# Threads overlap database and network waits and keep clients' connections alive (Alertmanager,
# Grafana and browsers reuse them); several processes keep one held GIL from idling a CPU.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
keepalive = 5
timeout = 60
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None  # empty: no access log
# gunicorn's control socket defaults to one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl): a second console on the host would take it over, and remove it on exit.
# Off unless this instance is given its own path.
control_socket_disable = not os.environ.get("WEB_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["WEB_CONTROL_SOCKET"]


# Webhook counters for /metrics are kept per process; prometheus-client's multiprocess mode sums them
# at a scrape, whichever process answers it. Each instance gets a fresh directory of its own (set
# here, before any worker imports prometheus-client), removed when it stops. An operator who sets
# PROMETHEUS_MULTIPROC_DIR gives a directory this instance owns, emptied before it starts.
_metrics_dir_owned = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _metrics_dir_owned:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cdb-console-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    """A worker process is gone: its counts stay (counters), its live gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _metrics_dir_owned:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_worker_init(worker: Any) -> None:
    """Get the process ready before its first request:
    1. Import every view and the broker client (the first alert's wake-up would otherwise spend
       about a second of this process's time on imports and connecting, stalling its requests).
    2. Freeze what is loaded: Python's full garbage collections no longer walk the ~100,000
       long-lived objects of Django and the app, each of which otherwise stalls the process's
       requests for tens of milliseconds.
    3. Wake the alert router once, in the background: it routes whatever was stored while the web
       was down, and the broker connection is open before the first alert needs it."""
    from django.urls import get_resolver
    from kombu.transport import redis  # noqa: F401  (the broker client, imported with its dependencies)

    from detection.services import wake_router

    get_resolver().url_patterns  # noqa: B018  (imports every URLconf and view module)
    gc.freeze()
    wake_router()
