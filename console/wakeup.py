"""Wake a Celery task from a web or worker process without ever waiting on the broker.

PostgreSQL is the source of truth for every piece of pending work; a wake-up only makes a worker look
sooner than its periodic sweep would. Publishing happens on one background thread per waker and
process, so a request never waits for a stopped Redis (which takes seconds to refuse). The first
wake-up is published at once; those requested within `interval` are coalesced into one publish at its
end. Best effort by design: a wake-up lost with its process, or refused by the broker, is left to the
sweep. `WAKE_WORKERS=false` turns wake-ups off (the test suite, where no worker consumes them).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)


class Waker:
    def __init__(self, task: str, *, interval: float = 0.25, expires: float = 300) -> None:
        self.task = task  # "app.tasks.name", the registered task's name
        self.interval = interval
        self.expires = expires
        self._due = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self.published = self.failed = 0  # this process's wake-ups, for tests and debugging

    def __call__(self) -> None:
        if not settings.WAKE_WORKERS:
            return  # the test suite: nothing consumes the queue, the sweeps are called directly
        self._due.set()
        if self._thread is None or not self._thread.is_alive():
            with self._start:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name=f"wake {self.task}", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        # The project's app by name, never Celery's "current app": that is thread-local, and on this
        # thread it would be whatever app was last made the process default.
        from config.celery import app

        while True:
            self._due.wait()
            self._due.clear()
            try:
                app.send_task(self.task, retry=False, expires=self.expires)
                self.published += 1
            except Exception:
                self.failed += 1
                log.warning(
                    "Could not wake %s; its periodic sweep will do the work", self.task, exc_info=True
                )
            time.sleep(self.interval)
