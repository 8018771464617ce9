"""Writes every app shares."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from console.models import Heartbeat

MAX_ERROR = 300


def heartbeat(name: str, *, error: str = "", at: datetime | None = None) -> None:
    """Record that the periodic job `name` ran: successfully (no `error`), or failing with `error`.
    One statement; committed at once outside a transaction, so it survives the job's own rollback."""
    at = at or timezone.now()
    if error:
        fields = {"failed_at": at, "last_error": error[:MAX_ERROR]}
    else:
        fields = {"last_seen": at, "last_error": ""}
    if not Heartbeat.objects.filter(name=name).update(**fields):
        Heartbeat.objects.update_or_create(name=name, defaults=fields)
