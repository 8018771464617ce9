from __future__ import annotations

from celery import shared_task

from comms import services


@shared_task(acks_late=True)
def remind_overdue_updates() -> int:
    """At-least-once and idempotent: each due time reminds its commander once (row lock and
    `reminded_for`)."""
    return services.update_reminders_sweep()
