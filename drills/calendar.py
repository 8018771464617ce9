"""Drills on the console's calendar, the calendar's month and week grids, and the drills feed (ICS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar
from icalendar import Event as IcsEvent

from console import calendar
from console.calendar import Event
from drills import selectors
from drills.models import Drill, Status

KIND = "drill"


def _event(drill: Drill) -> Event:
    return Event(
        kind=KIND,
        title=f"Drill: {drill.drill_type.name}",
        start=drill.scheduled_for,
        end=drill.ends_at,
        url=reverse("drills:detail", args=[drill.pk]),
        uid=uid(drill),
    )


def uid(drill: Drill) -> str:
    """Stable for the occurrence's life: moving it changes its times, not its UID."""
    return f"drill-{drill.pk}@cdb-console"


def drill_events(start: datetime, end: datetime, user: Any) -> list[Event]:
    """Every drill in [start, end) that is not cancelled (everyone with a role sees the programme)."""
    if not user.has_perm("drills.view_drill"):
        return []
    return [_event(d) for d in selectors.drills_between(start, end).exclude(status=Status.CANCELLED)]


def register_source() -> None:
    calendar.register(KIND, "Drills", drill_events)


@dataclass
class Day:
    day: date
    in_month: bool
    today: bool
    events: list[tuple[Event, int, bool]] = field(default_factory=list)  # (event, colour index, movable)


def grid(*, view: str, anchor: date, user: Any) -> dict[str, Any]:
    """The weeks (Monday first) of the month around `anchor`, or its week, with every source's events
    by local day; `previous` and `next` are the anchors of the neighbouring month or week."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        last = first + timedelta(days=6)
        previous, following = anchor - timedelta(days=7), anchor + timedelta(days=7)
        title = f"Week of {first:%d %b %Y}"
    else:
        month_start = anchor.replace(day=1)
        month_end = (month_start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        first = month_start - timedelta(days=month_start.weekday())
        last = month_end + timedelta(days=6 - month_end.weekday())
        previous = (month_start - timedelta(days=1)).replace(day=1)
        following = month_end + timedelta(days=1)
        title = f"{month_start:%B %Y}"
    tz = timezone.get_current_timezone()
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    today = timezone.localdate()
    days = {
        first + timedelta(days=i): Day(
            first + timedelta(days=i),
            view == "week" or (first + timedelta(days=i)).month == anchor.month,
            first + timedelta(days=i) == today,
        )
        for i in range((last - first).days + 1)
    }
    kinds = [s.kind for s in calendar.sources()]
    movable = user.has_perm("drills.change_drill")
    for event in calendar.events(start, end, user):
        day = timezone.localdate(event.start)
        if day in days:
            days[day].events.append((event, kinds.index(event.kind), movable and event.kind == KIND))
    ordered = [days[d] for d in sorted(days)]
    return {
        "view": view,
        "anchor": anchor,
        "title": title,
        "weeks": [ordered[i : i + 7] for i in range(0, len(ordered), 7)],
        "previous": previous,
        "next": following,
        "legend": [(i, s) for i, s in enumerate(calendar.sources())],
    }


def feed(*, user: Any, now: datetime | None = None) -> bytes:
    """One person's drills (as a participant or owner) as an iCalendar feed (RFC 5545); cancelled
    occurrences stay in it, STATUS:CANCELLED, so calendar programs remove them."""
    now = now or timezone.now()
    cal = Calendar()
    cal.add("prodid", "-//CDB Incident Console//drills//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"Drills: {user.get_username()}")
    for drill in selectors.drills_of(user).filter(scheduled_for__gte=now - timedelta(days=60)):
        event = IcsEvent()
        event.add("uid", uid(drill))
        event.add("dtstamp", now)
        event.add("dtstart", drill.scheduled_for)
        event.add("dtend", drill.ends_at)
        event.add("summary", f"DRILL: {drill.drill_type.name}")
        event.add(
            "description",
            f"{drill.drill_type.name} drill ({drill.get_status_display().lower()}). "
            "A drill: its incident is marked DRILL and acts on the drill target only.",
        )
        event.add("status", "CANCELLED" if drill.status == Status.CANCELLED else "CONFIRMED")
        event.add("sequence", (1 if drill.moved else 0) + (1 if drill.status == Status.CANCELLED else 0))
        event.add("categories", ["Drill"])
        cal.add_component(event)
    return cal.to_ical()
