from __future__ import annotations

from celery import shared_task

from actions import services
from console.services import heartbeat

JOB = "action items"


@shared_task(acks_late=True)
def remind_overdue() -> int:
    """At-least-once and idempotent: each item's due date is claimed with its reminder in one
    transaction, so a repeat or a killed worker never sends one twice. A heartbeat (`action items`)
    shows a failing run in the top bar."""
    try:
        reminded = services.action_items_remind_overdue()
    except Exception as exc:
        heartbeat(JOB, error=f"{exc.__class__.__name__}: {exc}")
        raise
    heartbeat(JOB)
    return reminded
