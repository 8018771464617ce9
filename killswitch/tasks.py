from __future__ import annotations

import logging

from celery import shared_task

from killswitch import services
from killswitch.targets import all_targets

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def reconcile_targets() -> dict[str, str]:
    """At-least-once and idempotent: reads every target; only a real change is recorded."""
    result = {}
    for name in all_targets():
        try:
            result[name] = services.killswitch_reconcile(target=name).condition
        except Exception:  # one broken target must not hide the others
            log.exception("Reconcile of kill-switch target %s failed", name)
            result[name] = "error"
    return result


@shared_task(acks_late=True)
def expire_resume_requests() -> int:
    """At-least-once and idempotent: the database says what is due."""
    return services.resume_requests_expire()
