"""On-call handoffs on the console's calendar: each moment a duty passes to someone else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.urls import reverse

from console.calendar import Event, register
from oncall import selectors
from oncall.models import Duty


def handoffs(start: datetime, end: datetime, user: Any) -> list[Event]:
    """Within [start, end): when each rotation's duty changes hands (overrides included)."""
    window = selectors.window(start, end)
    names = dict(
        get_user_model()
        .objects.filter(pk__in={s.user_id for segs in window.segments.values() for s in segs if s.user_id})
        .values_list("pk", "username")
    )
    labels = dict(Duty.choices)
    found = []
    for plan in window.plans:
        previous = None
        for shift in window.segments[plan.id]:
            if shift.user_id != previous and shift.start > start:
                who = names.get(shift.user_id or 0, "nobody")
                found.append(
                    Event(
                        kind="handoff",
                        title=f"{labels[plan.duty]}: {who} takes over ({plan.name})",
                        start=shift.start,
                        url=reverse("oncall:index"),
                        uid=f"handoff-{plan.id}-{int(shift.start.timestamp())}@cdb-console",
                    )
                )
            previous = shift.user_id
    return found


def register_source() -> None:
    register("handoff", "On-call handoffs", handoffs)
