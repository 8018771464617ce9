"""On-call reads: the effective schedule of every rotation, loaded in three queries whatever its size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from oncall import schedule
from oncall.models import CalendarFeed, Duty, Override, Rotation, RotationMember

COVERAGE_DAYS = 14


def plans(*, duty: str | None = None) -> list[schedule.Plan]:
    rotations = Rotation.objects.filter(enabled=True)
    if duty:
        rotations = rotations.filter(duty=duty)
    members: dict[int, list[int]] = {}
    for rotation_id, user_id in (
        RotationMember.objects.filter(rotation__in=rotations)
        .order_by("rotation_id", "position")
        .values_list("rotation_id", "user_id")
    ):
        members.setdefault(rotation_id, []).append(user_id)
    return [
        schedule.Plan(
            id=r.pk,
            name=r.name,
            duty=r.duty,
            time_zone=r.time_zone,
            effective_from=r.effective_from,
            handoff_time=r.handoff_time,
            handoff_weekday=r.handoff_weekday,
            shift_hours=r.shift_hours,
            members=tuple(members.get(r.pk, ())),
        )
        for r in rotations
    ]


def covers(rotation_ids: list[int], start: datetime, end: datetime) -> list[schedule.Cover]:
    """The overrides touching [start, end), oldest first (a later override wins)."""
    rows = Override.objects.filter(
        rotation_id__in=rotation_ids, ends_at__gt=start, starts_at__lt=end
    ).order_by("created_at", "id")
    return [
        schedule.Cover(o.pk, o.rotation_id, o.user_id, o.replaces_id, o.starts_at, o.ends_at) for o in rows
    ]


@dataclass(frozen=True)
class Window:
    """The effective schedule of every (or one duty's) rotation over [start, end)."""

    start: datetime
    end: datetime
    plans: list[schedule.Plan]
    segments: dict[int, list[schedule.Shift]]

    def of_duty(self, duty: str) -> list[schedule.Shift]:
        return [s for p in self.plans if p.duty == duty for s in self.segments[p.id]]


def window(start: datetime, end: datetime, *, duty: str | None = None) -> Window:
    ps = plans(duty=duty)
    cs = covers([p.id for p in ps], start, end)
    return Window(start, end, ps, {p.id: schedule.effective(p, cs, start, end) for p in ps})


def active_user_ids(ids: set[int]) -> set[int]:
    return set(get_user_model().objects.filter(pk__in=ids, is_active=True).values_list("pk", flat=True))


def on_call(duty: str, at: datetime | None = None) -> list[Any]:
    """The active people holding `duty` at `at` (one per enabled rotation of that duty)."""
    at = at or timezone.now()
    w = window(at, at + timedelta(seconds=1), duty=duty)
    ids = {s.user_id for s in w.of_duty(duty) if s.user_id is not None}
    return list(get_user_model().objects.filter(pk__in=ids, is_active=True).order_by("username"))


@dataclass(frozen=True)
class Holder:
    user: Any
    rotation: str
    start: datetime
    end: datetime
    override: bool


@dataclass(frozen=True)
class DutyNow:
    duty: str
    label: str
    now: list[Holder]
    next: list[Holder]


def now_and_next(at: datetime | None = None, *, horizon_days: int = 35) -> list[DutyNow]:
    """For each duty: who holds it now (until when), and who takes over next (from when)."""
    at = at or timezone.now()
    w = window(at, at + timedelta(days=horizon_days))
    users = get_user_model().objects.in_bulk(
        {s.user_id for segs in w.segments.values() for s in segs if s.user_id}
    )
    names = {p.id: p.name for p in w.plans}
    result = []
    for duty, label in Duty.choices:
        now: list[Holder] = []
        upcoming: list[Holder] = []
        for plan in (p for p in w.plans if p.duty == duty):
            segs = [s for s in w.segments[plan.id] if s.user_id is not None]
            current = next((s for s in segs if s.start <= at < s.end), None)
            if current is not None and current.user_id in users:
                now.append(_holder(current, users, names))
            after = next(
                (s for s in segs if s.start >= at and s.user_id != (current.user_id if current else None)),
                None,
            )
            if after is not None and after.user_id in users:
                upcoming.append(_holder(after, users, names))
        result.append(DutyNow(duty, label, now, upcoming))
    return result


def _holder(s: schedule.Shift, users: dict[Any, Any], names: dict[int, str]) -> Holder:
    return Holder(users[s.user_id], names[s.rotation_id], s.start, s.end, s.override_id is not None)


def coverage_gaps(*, start: datetime | None = None, days: int = COVERAGE_DAYS) -> list[schedule.Gap]:
    """Every uncovered minute of every duty in the next `days` days (a duty nobody holds, a rotation
    that starts later, a member whose account is disabled)."""
    start = (start or timezone.now()).replace(second=0, microsecond=0)
    end = start + timedelta(days=days)
    w = window(start, end)
    active = active_user_ids({s.user_id for segs in w.segments.values() for s in segs if s.user_id})
    return [gap for duty in Duty.values for gap in schedule.gaps(duty, w.of_duty(duty), start, end, active)]


def feeds_of(user: Any) -> QuerySet[CalendarFeed]:
    return CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).select_related("rotation")
