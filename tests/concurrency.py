"""Release threads at once with a barrier, for the concurrency tests on real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection

THREADS = 8


def race(fn: Callable[[int], object], threads: int = THREADS, timeout: float = 60) -> list[object]:
    """Run fn(0..threads-1) in threads released at once; each result or exception, in order."""
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except Exception as exc:  # collected for the test to assert on
            results[i] = exc
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in workers), "a thread is stuck (deadlock?)"
    return results
