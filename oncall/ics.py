"""Shifts as an iCalendar feed (RFC 5545), built with the icalendar library."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from icalendar import Calendar, Event

from oncall import selectors
from oncall.models import Duty

PAST_DAYS, FUTURE_DAYS = 30, 120


def feed(*, user: Any = None, rotation_id: int | None = None, now: datetime | None = None) -> bytes:
    """One calendar: `user`'s shifts in every rotation (overrides included), or one rotation's shifts."""
    now = now or timezone.now()
    w = selectors.window(now - timedelta(days=PAST_DAYS), now + timedelta(days=FUTURE_DAYS))
    labels = dict(Duty.choices)
    plans = {p.id: p for p in w.plans}
    segments = [
        s
        for pid, segs in w.segments.items()
        for s in segs
        if s.user_id is not None
        and (rotation_id is None or pid == rotation_id)
        and (user is None or s.user_id == user.pk)
    ]
    names = dict(
        get_user_model().objects.filter(pk__in={s.user_id for s in segments}).values_list("pk", "username")
    )
    cal = Calendar()
    cal.add("prodid", "-//CDB Incident Console//on-call//EN")
    cal.add("version", "2.0")
    title = (
        f"On call: {plans[rotation_id].name}"
        if rotation_id in plans
        else f"On call: {getattr(user, 'username', '')}"
    )
    cal.add("x-wr-calname", title)
    for s in sorted(segments, key=lambda s: (s.start, s.rotation_id)):
        plan = plans[s.rotation_id]
        event = Event()
        who = names.get(s.user_id or 0, "?")
        covering = " (override)" if s.override_id else ""
        event.add("summary", f"{labels[plan.duty]}: {who}{covering} · {plan.name}")
        event.add("dtstart", s.start)
        event.add("dtend", s.end)
        event.add("dtstamp", now)
        uid = f"oncall-{plan.id}-{s.index}-{s.override_id or 0}-{int(s.start.timestamp())}@cdb-console"
        event.add("uid", uid)
        event.add("description", f"{labels[plan.duty]} in rotation {plan.name}, {plan.time_zone}.")
        cal.add_component(event)
    return cal.to_ical()
