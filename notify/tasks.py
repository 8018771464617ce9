from __future__ import annotations

from celery import shared_task

from notify import services


@shared_task(acks_late=True)
def deliver_messages() -> int:
    """At-least-once and idempotent: delivers whatever the outbox says is due; each message is claimed
    once per attempt, so a repeated or concurrent run sends nothing twice. Woken on commit by every
    enqueue, and run periodically as the sweep that delivers what a lost wake-up or a broker outage
    left waiting (and retries what failed)."""
    return services.messages_deliver_due()
