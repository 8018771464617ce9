from __future__ import annotations

from celery import shared_task


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
