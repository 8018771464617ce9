"""Wake-ups publish a task by its name through the project's Celery app: each name must be one the
app registers, or the worker would drop the wake-up as an unknown task."""

from __future__ import annotations

import gc

from config.celery import app
from console.wakeup import Waker


def test_every_waker_names_a_registered_task() -> None:
    wakers = [o for o in gc.get_objects() if isinstance(o, Waker)]
    names = sorted(w.task for w in wakers)
    assert names == [
        "detection.tasks.route_signals",
        "detection.tasks.take_status_snapshots",
        "escalation.tasks.escalate",
        "notify.tasks.deliver_messages",
    ]
    app.loader.import_default_modules()
    assert [name for name in names if name not in app.tasks] == []
