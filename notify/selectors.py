"""Reads of the outbox and the inbox."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from notify.models import InboxItem, Message

INCIDENT_MESSAGES = 50


def messages_for_incident(incident_id: int, *, limit: int = INCIDENT_MESSAGES) -> list[Message]:
    """An incident's messages, newest first (one query; the page shows their delivery state)."""
    return list(
        Message.objects.filter(incident_id=incident_id).select_related("recipient").order_by("-id")[:limit]
    )


def inbox_for(user: Any) -> QuerySet[InboxItem]:
    return InboxItem.objects.filter(user=user).order_by("-id")


def unread_count(user: Any) -> int:
    return InboxItem.objects.filter(user=user, read_at__isnull=True).count()
