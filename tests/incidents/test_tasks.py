"""The SLA sweep crosses the real broker: Redis (as in production) and a real Celery worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.utils import timezone

from config.celery import app
from incidents import tasks
from incidents.models import EventKind, Severity, TimelineEvent
from tests.incidents.factories import declare


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_records_the_breach_once(responder, fresh_queue):
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test runs against Redis"
    overdue = declare(responder, severity=Severity.SEV1, detected_at=timezone.now() - timedelta(minutes=16))
    in_time = declare(responder, severity=Severity.SEV1)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        for _ in range(3):  # a repeated (at-least-once) delivery records nothing twice
            tasks.sweep_sla_breaches.delay()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if TimelineEvent.objects.filter(incident=overdue, kind=EventKind.SLA_BREACHED).exists():
                break
            time.sleep(0.2)
        time.sleep(1)
    assert TimelineEvent.objects.filter(incident=overdue, kind=EventKind.SLA_BREACHED).count() == 1
    assert not TimelineEvent.objects.filter(incident=in_time, kind=EventKind.SLA_BREACHED).exists()
