from __future__ import annotations

from celery import shared_task

from comms import services


@shared_task(acks_late=True)
def remind_overdue_updates() -> int:
    """At-least-once and idempotent: each due time reminds its commander once (row lock and
    `reminded_for`)."""
    return services.update_reminders_sweep()


@shared_task(acks_late=True)
def remind_playbook_review() -> bool:
    """At-least-once and idempotent: each review due date is claimed with its reminder in one
    transaction. A heartbeat (`playbook review`) shows a failing run in the top bar."""
    from comms.review import playbook_review_remind
    from console.services import heartbeat

    try:
        sent = playbook_review_remind()
    except Exception as exc:
        heartbeat("playbook review", error=f"{exc.__class__.__name__}: {exc}")
        raise
    heartbeat("playbook review")
    return sent
