from __future__ import annotations

from celery import shared_task

from killswitch import services


@shared_task(acks_late=True)
def reconcile_targets() -> dict[str, str]:
    """At-least-once and idempotent: reads every target; only a real change is recorded."""
    return services.killswitch_reconcile_all()


@shared_task(acks_late=True)
def expire_resume_requests() -> int:
    """At-least-once and idempotent: the database says what is due."""
    return services.resume_requests_expire()
