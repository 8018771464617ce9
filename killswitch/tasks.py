from __future__ import annotations

from celery import shared_task
from django.conf import settings

from console.services import heartbeat
from killswitch import permissions_audit, services

# A backstop: every read is bounded by its own timeout, so a run this long is stuck somewhere else.
# The soft limit raises inside the run, which then marks its heartbeat failing.
_LIMIT = max(30.0, 3 * settings.KILLSWITCH_RECONCILE_SECONDS)


@shared_task(acks_late=True, soft_time_limit=_LIMIT, time_limit=_LIMIT + 10)
def reconcile_targets() -> dict[str, str]:
    """At-least-once and idempotent: reads every target; only a real change is recorded."""
    return services.killswitch_reconcile_all()


@shared_task(acks_late=True)
def expire_resume_requests() -> int:
    """At-least-once and idempotent: the database says what is due."""
    return services.resume_requests_expire()


@shared_task(acks_late=True)
def reconcile_powers() -> int:
    """At-least-once and idempotent: records kill-switch powers changed where no hook saw it (raw SQL,
    queryset.update). A heartbeat (`kill-switch powers`) shows a failing run in the top bar."""
    try:
        changed = permissions_audit.powers_reconcile()
    except Exception as exc:
        heartbeat("kill-switch powers", error=f"{exc.__class__.__name__}: {exc}")
        raise
    heartbeat("kill-switch powers")
    return changed
