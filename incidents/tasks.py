from __future__ import annotations

from celery import shared_task

from incidents import services


@shared_task(acks_late=True)
def sweep_sla_breaches() -> int:
    """At-least-once and idempotent: the database says what is due; a repeat records nothing twice."""
    return services.sla_breaches_sweep()
