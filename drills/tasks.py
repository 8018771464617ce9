from __future__ import annotations

from celery import shared_task

from console.services import heartbeat
from drills import services


@shared_task(acks_late=True)
def generate_drills() -> int:
    """At-least-once and idempotent: occurrences are keyed by (type, the rule's time)."""
    made = services.drills_generate()
    heartbeat(services.GENERATE_JOB)
    return made


@shared_task(acks_late=True, reject_on_worker_lost=True)
def announce_drills() -> int:
    """At-least-once and idempotent: each drill's announcement is claimed (`announced_at`) in the
    transaction that queues its messages, and the messages carry dedupe keys."""
    sent = services.drills_announce_due()
    heartbeat(services.ANNOUNCE_JOB)
    return sent
