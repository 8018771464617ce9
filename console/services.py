"""Writes every app shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from console.models import Heartbeat

MAX_ERROR = 300


def heartbeat(name: str, *, error: str = "", at: datetime | None = None) -> None:
    """Record that the periodic job `name` ran: successfully (no `error`), or failing with `error`.
    A failure keeps the streak's first failure (`failing_since`); a success ends the streak.
    One statement; committed at once outside a transaction, so it survives the job's own rollback."""
    at = at or timezone.now()
    fields: dict[str, Any]
    if error:
        fields = {"failed_at": at, "last_error": error[:MAX_ERROR]}
        streak = Coalesce(F("failing_since"), Value(at))
    else:
        fields = {"last_seen": at, "last_error": ""}
        streak = None
    if not Heartbeat.objects.filter(name=name).update(**fields, failing_since=streak):
        Heartbeat.objects.update_or_create(
            name=name, defaults={**fields, "failing_since": at if error else None}
        )
