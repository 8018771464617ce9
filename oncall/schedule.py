"""Who holds a duty when: rotations turned into shifts, overrides cut into them. Pure functions over
plain data (selectors load it in a fixed number of queries), so the same code answers "who is on call
now", "who is next", the coverage check, the calendar feeds and the escalation sweep.

Shifts are counted in the rotation's local wall-clock time: shift k runs from anchor + k x length to
anchor + (k+1) x length, local, each boundary then placed in its time zone. A weekly 09:00 handoff
stays at 09:00 through daylight-saving changes (that week's shift is an hour shorter or longer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Plan:
    """A rotation as the schedule needs it."""

    id: int
    name: str
    duty: str
    time_zone: str
    effective_from: date
    handoff_time: time
    handoff_weekday: int | None
    shift_hours: int
    members: tuple[int, ...]  # user ids in order

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def length(self) -> timedelta:
        return timedelta(hours=self.shift_hours)

    def anchor(self) -> datetime:
        """The first handoff, local and naive: the effective date (or the first handoff weekday on or
        after it) at the handoff time."""
        day = self.effective_from
        if self.handoff_weekday is not None:
            day += timedelta(days=(self.handoff_weekday - day.weekday()) % 7)
        return datetime.combine(day, self.handoff_time)

    def place(self, local: datetime) -> datetime:
        """A local wall-clock time as an aware UTC time (a time skipped by DST moves forward)."""
        return local.replace(tzinfo=self.tz).astimezone(UTC)


@dataclass(frozen=True)
class Cover:
    """One person (or nobody: None) covering an override's stretch."""

    id: int
    rotation_id: int
    user_id: int
    replaces_id: int | None
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Shift:
    rotation_id: int
    start: datetime
    end: datetime
    user_id: int | None  # None: nobody holds the duty (no members yet, before the first handoff)
    index: int | None = None  # the rotation's shift number (None before the first handoff)
    override_id: int | None = None


def shifts(plan: Plan, start: datetime, end: datetime) -> list[Shift]:
    """The rotation's own shifts overlapping [start, end), in order, clipped to it."""
    if end <= start:
        return []
    anchor = plan.anchor()
    first = plan.place(anchor)
    result: list[Shift] = []
    if start < first:
        result.append(Shift(plan.id, start, min(first, end), None))
        if end <= first:
            return result
    local_start = max(start, first).astimezone(plan.tz).replace(tzinfo=None)
    k = max(0, math.floor((local_start - anchor) / plan.length))
    while True:
        s = plan.place(anchor + k * plan.length)
        e = plan.place(anchor + (k + 1) * plan.length)
        if s >= end:
            break
        if e > start and e > s:
            user = plan.members[k % len(plan.members)] if plan.members else None
            result.append(Shift(plan.id, max(s, start), min(e, end), user, k))
        k += 1
    return result


def apply_overrides(scheduled: list[Shift], covers: Iterable[Cover]) -> list[Shift]:
    """Cut each override into the shifts it covers, in the given order (a later one wins)."""
    segments = list(scheduled)
    for cover in covers:
        cut: list[Shift] = []
        for seg in segments:
            applies = (
                seg.rotation_id == cover.rotation_id
                and seg.start < cover.ends_at
                and cover.starts_at < seg.end
                and (cover.replaces_id is None or seg.user_id == cover.replaces_id)
            )
            if not applies:
                cut.append(seg)
                continue
            lo, hi = max(seg.start, cover.starts_at), min(seg.end, cover.ends_at)
            if seg.start < lo:
                cut.append(replace(seg, end=lo))
            cut.append(replace(seg, start=lo, end=hi, user_id=cover.user_id, override_id=cover.id))
            if hi < seg.end:
                cut.append(replace(seg, start=hi))
        segments = cut
    return segments


def effective(plan: Plan, covers: Iterable[Cover], start: datetime, end: datetime) -> list[Shift]:
    """Who holds the rotation's duty over [start, end): its shifts with the overrides applied."""
    return apply_overrides(shifts(plan, start, end), [c for c in covers if c.rotation_id == plan.id])


@dataclass(frozen=True)
class Gap:
    duty: str
    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        return math.ceil((self.end - self.start).total_seconds() / 60)


def gaps(duty: str, segments: Iterable[Shift], start: datetime, end: datetime, active: set[int]) -> list[Gap]:
    """The stretches of [start, end) in which no active person holds `duty`, merged."""
    covered = sorted(
        (max(s.start, start), min(s.end, end))
        for s in segments
        if s.user_id is not None and s.user_id in active and s.end > start and s.start < end
    )
    result: list[Gap] = []
    cursor = start
    for lo, hi in covered:
        if lo > cursor:
            result.append(Gap(duty, cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        result.append(Gap(duty, cursor, end))
    return result
