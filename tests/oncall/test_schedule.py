"""Shifts, overrides, who is on call now and next, and the coverage check."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time

import pytest
import time_machine

from oncall import schedule, selectors, services
from oncall.models import Duty, Rotation
from tests.incidents.factories import make_user
from tests.oncall.factories import rotation

pytestmark = pytest.mark.django_db


def T(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def plan(**kw: object) -> schedule.Plan:
    base = dict(
        id=1, name="p", duty="oncall_engineer", time_zone="UTC", effective_from=date(2026, 1, 5),
        handoff_time=time(9), handoff_weekday=0, shift_hours=168, members=(10, 11, 12),
    )  # fmt: skip
    return schedule.Plan(**(base | kw))  # type: ignore[arg-type]


def test_members_take_turns_from_the_first_handoff():
    segs = schedule.shifts(plan(), T(2026, 1, 1), T(2026, 2, 2, 9))
    assert [(s.start, s.user_id) for s in segs] == [
        (T(2026, 1, 1), None),  # before the first handoff nobody holds the duty
        (T(2026, 1, 5, 9), 10),
        (T(2026, 1, 12, 9), 11),
        (T(2026, 1, 19, 9), 12),
        (T(2026, 1, 26, 9), 10),
    ]
    assert segs[-1].end == T(2026, 2, 2, 9)


def test_the_first_handoff_is_the_weekday_on_or_after_the_effective_date():
    assert plan(effective_from=date(2026, 1, 7), handoff_weekday=4).anchor() == datetime(2026, 1, 9, 9)
    assert plan(effective_from=date(2026, 1, 7), handoff_weekday=None).anchor() == datetime(2026, 1, 7, 9)


def test_a_local_handoff_stays_at_its_local_time_across_daylight_saving():
    berlin = plan(time_zone="Europe/Berlin")  # 09:00 Berlin: 08:00 UTC in winter, 07:00 in summer
    segs = schedule.shifts(berlin, T(2026, 3, 16, 8), T(2026, 4, 7))
    starts = [s.start for s in segs if s.user_id is not None]
    assert starts == [T(2026, 3, 16, 8), T(2026, 3, 23, 8), T(2026, 3, 30, 7), T(2026, 4, 6, 7)]
    # The week with the change is an hour shorter; no minute is lost or doubled.
    assert all(a.end == b.start for a, b in itertools.pairwise(segs))


def test_twelve_hour_shifts_alternate():
    segs = schedule.shifts(
        plan(shift_hours=12, handoff_weekday=None, members=(1, 2)), T(2026, 1, 5, 9), T(2026, 1, 6, 21)
    )
    assert [(s.start.hour, s.user_id) for s in segs] == [(9, 1), (21, 2), (9, 1)]


def test_an_override_cuts_into_the_shift_it_covers():
    p = plan()
    cover = schedule.Cover(7, 1, 99, None, T(2026, 1, 13, 12), T(2026, 1, 14, 12))
    segs = schedule.effective(p, [cover], T(2026, 1, 12, 9), T(2026, 1, 19, 9))
    assert [(s.start, s.end, s.user_id, s.override_id) for s in segs] == [
        (T(2026, 1, 12, 9), T(2026, 1, 13, 12), 11, None),
        (T(2026, 1, 13, 12), T(2026, 1, 14, 12), 99, 7),
        (T(2026, 1, 14, 12), T(2026, 1, 19, 9), 11, None),
    ]


def test_an_override_for_one_person_leaves_the_others_shifts_alone_and_a_later_one_wins():
    p = plan()
    for_eleven = schedule.Cover(1, 1, 99, 11, T(2026, 1, 10), T(2026, 1, 14))  # spans 10's and 11's shifts
    later = schedule.Cover(2, 1, 98, None, T(2026, 1, 13), T(2026, 1, 13, 6))
    segs = schedule.effective(p, [for_eleven, later], T(2026, 1, 10), T(2026, 1, 15))
    assert [(s.start, s.user_id) for s in segs] == [
        (T(2026, 1, 10), 10),  # 10's shift is not 11's: untouched
        (T(2026, 1, 12, 9), 99),
        (T(2026, 1, 13), 98),
        (T(2026, 1, 13, 6), 99),
        (T(2026, 1, 14), 11),
    ]


def test_gaps_merge_uncovered_stretches_and_count_disabled_people_as_nobody():
    segs = schedule.shifts(plan(), T(2026, 1, 1), T(2026, 1, 20))
    gaps = schedule.gaps("oncall_engineer", segs, T(2026, 1, 1), T(2026, 1, 20), active={10, 12})
    assert [(g.start, g.end) for g in gaps] == [
        (T(2026, 1, 1), T(2026, 1, 5, 9)),
        (T(2026, 1, 12, 9), T(2026, 1, 19, 9)),
    ]


def test_who_is_on_call_now_and_next():
    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    rotation(alice, bob)
    rotation(make_user(role="lead", username="lena"), name="leads", duty=Duty.TECH_LEAD)
    with time_machine.travel(T(2026, 1, 13, 10), tick=False):
        assert selectors.on_call(Duty.ONCALL_ENGINEER) == [bob]
        duties = {d.duty: d for d in selectors.now_and_next()}
    engineer = duties[Duty.ONCALL_ENGINEER]
    assert [(h.user, h.end) for h in engineer.now] == [(bob, T(2026, 1, 19, 9))]
    assert [(h.user, h.start) for h in engineer.next] == [(alice, T(2026, 1, 19, 9))]
    assert [h.user.username for h in duties[Duty.TECH_LEAD].now] == ["lena"]
    assert duties[Duty.EXECUTIVE].now == [] and duties[Duty.EXECUTIVE].next == []


def test_an_override_changes_who_is_paged():
    alice, bob, carol = (make_user(role="responder", username=n) for n in ("alice", "bob", "carol"))
    r = rotation(alice, bob)
    with time_machine.travel(T(2026, 1, 13, 10), tick=False):
        services.override_create(
            rotation=r,
            user=carol,
            replaces=bob,
            starts_at=T(2026, 1, 13),
            ends_at=T(2026, 1, 14),
            actor=alice,
        )
        assert selectors.on_call(Duty.ONCALL_ENGINEER) == [carol]
        now = {d.duty: d for d in selectors.now_and_next()}[Duty.ONCALL_ENGINEER]
        assert now.now[0].override and now.next[0].user == bob


def test_coverage_finds_every_uncovered_minute_of_the_next_14_days():
    with time_machine.travel(T(2026, 1, 13, 10, 0, 30), tick=False):
        assert {g.duty for g in selectors.coverage_gaps()} == set(Duty.values)  # nothing set up yet
        alice, bob = make_user(role="responder"), make_user(role="responder")
        rotation(alice, bob)
        rotation(make_user(role="lead"), name="leads", duty=Duty.TECH_LEAD)
        rotation(make_user(role="executive"), name="cto", duty=Duty.EXECUTIVE)
        assert selectors.coverage_gaps() == []
        bob.is_active = False
        bob.save()
        # bob's two shifts in the window are uncovered: the rest of this week, and from the 26th on.
        gaps = [(g.duty, g.start, g.end) for g in selectors.coverage_gaps()]
        assert gaps == [
            (Duty.ONCALL_ENGINEER, T(2026, 1, 13, 10), T(2026, 1, 19, 9)),
            (Duty.ONCALL_ENGINEER, T(2026, 1, 26, 9), T(2026, 1, 27, 10)),
        ]
        services.override_create(
            rotation=Rotation.objects.get(name="primary"),
            user=alice,
            replaces=bob,
            starts_at=T(2026, 1, 13),
            ends_at=T(2026, 1, 19, 9),
            actor=alice,
        )
        assert [g.start for g in selectors.coverage_gaps()] == [T(2026, 1, 26, 9)]


def test_members_must_be_active_and_hold_a_role_and_overrides_must_make_sense():
    with pytest.raises(services.OnCallRefused, match="cannot be on call"):
        rotation(make_user(username="norole"))
    r = rotation()
    someone = make_user(role="responder")
    with time_machine.travel(T(2026, 1, 13), tick=False):
        with pytest.raises(services.OnCallRefused, match="end after it starts"):
            services.override_create(
                rotation=r, user=someone, starts_at=T(2026, 1, 14), ends_at=T(2026, 1, 14), actor=someone
            )
        with pytest.raises(services.OnCallRefused, match="over already"):
            services.override_create(
                rotation=r, user=someone, starts_at=T(2026, 1, 1), ends_at=T(2026, 1, 2), actor=someone
            )
        with pytest.raises(services.OnCallRefused, match="their own shift"):
            services.override_create(
                rotation=r,
                user=someone,
                replaces=someone,
                starts_at=T(2026, 1, 14),
                ends_at=T(2026, 1, 15),
                actor=someone,
            )


def test_handoffs_are_on_the_consoles_calendar():
    from console import calendar

    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    rotation(alice, bob)
    found = calendar.events(T(2026, 1, 10), T(2026, 1, 27), None, kinds=["handoff"])
    assert [(e.start, e.title) for e in found] == [
        (T(2026, 1, 12, 9), "On-call engineer: bob takes over (primary)"),
        (T(2026, 1, 19, 9), "On-call engineer: alice takes over (primary)"),
        (T(2026, 1, 26, 9), "On-call engineer: bob takes over (primary)"),
    ]
    assert "handoff" in {s.kind for s in calendar.sources()}
