from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("cdb_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def _require_secrets(**_: object) -> None:
    """Workers and beat sign audit records: without their secrets they refuse to start."""
    from console.checks import require_secrets

    require_secrets()
