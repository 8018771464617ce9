from __future__ import annotations

from celery import shared_task

from escalation import services


@shared_task(acks_late=True)
def escalate() -> int:
    """Exactly once per step, whatever runs it: each step is performed in the transaction that marks it
    done, under its incident's and its own row lock. Run periodically, and woken when a step is due now."""
    return services.escalation_sweep()
