from __future__ import annotations

from celery import shared_task

from console.services import heartbeat
from postmortems import services


@shared_task(acks_late=True)
def sweep_deadlines() -> dict[str, int]:
    """At-least-once and idempotent: each reminder is claimed with its messages in one transaction,
    so a repeat or a killed worker neither loses nor doubles one."""
    try:
        done = services.deadlines_sweep()
    except Exception as exc:
        heartbeat("post-mortem deadlines", error=f"{exc.__class__.__name__}: {exc}")
        raise
    heartbeat("post-mortem deadlines")
    return done
