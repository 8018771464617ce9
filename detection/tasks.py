from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError


@shared_task(acks_late=True)
def poll_health() -> dict[str, str]:
    """At-least-once and idempotent: each run checks every enabled service once; damping makes a
    repeated run harmless, and each transition is a signal with its own dedup key."""
    from detection import health

    return health.poll_all()


@shared_task(acks_late=True)
def prune_health_results() -> int:
    """Idempotent: keeps the newest settings.HEALTH_RESULTS_KEEP results per service."""
    from detection import health

    return health.prune_results()


@shared_task(acks_late=True)
def evaluate_prometheus_rules() -> dict[str, str]:
    """At-least-once and idempotent: each rule's state moves at most once per evaluation."""
    from detection import prometheus

    return prometheus.rules_evaluate()


@shared_task(acks_late=True)
def route_signals() -> int:
    """Idempotent, so at-least-once: routes every stored signal not yet routed (none twice: routers
    take turns on one lock). Woken by each webhook delivery that stored something new, and run
    periodically as the sweep that routes what a lost wake-up or a broker outage left waiting."""
    from detection.services import signals_route

    return signals_route()


@shared_task(acks_late=True, autoretry_for=(DatabaseError,), retry_backoff=5, max_retries=3)
def take_status_snapshots() -> dict[str, int]:
    """Idempotent, so at-least-once: takes every owed CDB `/status` snapshot (each request leased to
    one worker, its row written once). Woken after the change that owes one, and run periodically as
    the sweep that takes what a lost wake-up or a broker outage left waiting. A service that does not
    answer is recorded, not retried; the database being away is retried."""
    from detection import snapshots

    return snapshots.status_snapshots_take()
