from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied

from drills import selectors, services
from drills.models import Drill, DrillType, Status
from incidents.playbook import load_playbook
from tests.drills.factories import drill, drill_type
from tests.incidents.factories import make_user

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def test_the_playbook_loads_the_three_drill_types_of_section_9():
    rows = {k.slug: k for k in DrillType.objects.all()}
    assert set(rows) == {"kill-switch-test", "failover-test", "full-incident-drill"}
    assert rows["kill-switch-test"].frequency == "Monthly"
    assert rows["failover-test"].frequency == "Quarterly"
    assert rows["full-incident-drill"].frequency == "Semi-annual"
    assert rows["kill-switch-test"].targets["confirmed_halt"] == 660


def test_reloading_the_playbook_keeps_what_was_edited():
    drill_type(grace_days=2, rrule="FREQ=WEEKLY")
    load_playbook()
    kind = DrillType.objects.get(slug="kill-switch-test")
    assert (kind.grace_days, kind.rrule) == (2, "FREQ=WEEKLY")


@time_machine.travel(NOW, tick=False)
def test_it_generates_a_year_of_each_series_from_its_rrule():
    made = services.drills_generate()
    by_type = {
        k.slug: list(k.drills.values_list("scheduled_for", flat=True)) for k in DrillType.objects.all()
    }
    # A year from 2026-12-02: the first Tuesday of each month from January (December's has passed).
    assert by_type["kill-switch-test"][0] == datetime(2027, 1, 5, 10, tzinfo=UTC)
    assert by_type["kill-switch-test"][-1] == datetime(2027, 11, 2, 10, tzinfo=UTC)
    assert len(by_type["kill-switch-test"]) == 11
    assert len(by_type["failover-test"]) == 4
    assert len(by_type["full-incident-drill"]) == 2
    assert made == 17
    assert all(at.weekday() == 1 and at.day <= 7 for at in by_type["kill-switch-test"])
    assert by_type["full-incident-drill"] == [
        datetime(2027, 3, 18, 13, tzinfo=UTC),
        datetime(2027, 9, 16, 13, tzinfo=UTC),
    ]


@time_machine.travel(NOW, tick=False)
def test_generating_again_makes_nothing_new():
    services.drills_generate()
    assert services.drills_generate() == 0
    assert Drill.objects.count() == 17


def test_moving_one_occurrence_leaves_the_series_alone():
    lead = make_user(role="lead")
    with time_machine.travel(NOW, tick=False):
        services.drills_generate()
    first, second = Drill.objects.filter(drill_type__slug="kill-switch-test")[:2]
    moved_to = first.scheduled_for + timedelta(days=2, hours=3)
    services.drill_move(drill=first, scheduled_for=moved_to, actor=lead)
    with time_machine.travel(NOW + timedelta(days=40), tick=False):
        services.drills_generate()  # a later run must not bring back the original time
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.scheduled_for, first.moved) == (moved_to, True)
    assert not second.moved
    assert Drill.objects.filter(drill_type=first.drill_type, scheduled_for=first.original_at).count() == 0


def test_cancelling_keeps_the_row_and_the_generator_never_brings_it_back():
    lead = make_user(role="lead")
    with time_machine.travel(NOW, tick=False):
        services.drills_generate()
        first = Drill.objects.filter(drill_type__slug="failover-test").first()
        assert first is not None
        services.drill_cancel(drill=first, actor=lead, reason="release freeze")
        services.drills_generate()
    first.refresh_from_db()
    assert first.status == Status.CANCELLED
    assert Drill.objects.filter(drill_type=first.drill_type, original_at=first.original_at).count() == 1


def test_responders_cannot_move_or_cancel_drills():
    one = drill()
    responder = make_user(role="responder")
    with pytest.raises(PermissionDenied):
        services.drill_move(drill=one, scheduled_for=one.scheduled_for + timedelta(days=1), actor=responder)
    with pytest.raises(PermissionDenied):
        services.drill_cancel(drill=one, actor=responder)


def test_a_completed_drill_cannot_be_moved():
    one = drill(status=Status.COMPLETED)
    with pytest.raises(services.DrillRefused):
        services.drill_move(
            drill=one, scheduled_for=one.scheduled_for + timedelta(days=1), actor=make_user(role="lead")
        )


def test_a_type_that_never_ran_is_overdue_after_its_period_plus_grace():
    kind = drill_type(starts_at=datetime(2026, 11, 3, 10, tzinfo=UTC), grace_days=7)  # first Tuesday
    period = kind.period
    assert timedelta(days=28) <= period <= timedelta(days=35)
    due = kind.starts_at + period + timedelta(days=7)
    with time_machine.travel(due - timedelta(minutes=1), tick=False):
        assert "kill-switch-test" not in {r.drill_type.slug for r in selectors.overdue_types()}
    with time_machine.travel(due + timedelta(minutes=1), tick=False):
        assert "kill-switch-test" in {r.drill_type.slug for r in selectors.overdue_types()}


def test_a_completed_run_restarts_the_overdue_clock_and_a_cancelled_one_does_not():
    kind = drill_type(starts_at=datetime(2026, 1, 6, 10, tzinfo=UTC), grace_days=7)
    ran = datetime(2026, 11, 3, 10, tzinfo=UTC)
    drill(kind, at=datetime(2026, 11, 24, 10, tzinfo=UTC), status=Status.CANCELLED)
    with time_machine.travel(NOW, tick=False):
        assert selectors.programme()[0].overdue
        drill(kind, at=ran, status=Status.COMPLETED, started_at=ran)
        row = next(r for r in selectors.programme() if r.drill_type == kind)
        assert (row.overdue, row.last_run) == (False, ran)
    with time_machine.travel(ran + kind.period + timedelta(days=7, minutes=1), tick=False):
        assert next(r for r in selectors.programme() if r.drill_type == kind).overdue


def test_seed_demo_brings_the_programme_and_a_past_completed_drill(settings, tmp_path, ks_files):
    from django.core.management import call_command

    from incidents.management.commands import seed_demo

    seed_demo.CREDENTIALS_FILE = tmp_path / "demo-credentials.txt"
    settings.DEBUG = True
    call_command("seed_demo", "--no-incidents")
    call_command("seed_demo", "--no-incidents")  # a second run adds nothing
    rows = {row.drill_type.slug: row for row in selectors.programme()}
    assert all(row.next_scheduled for row in rows.values())
    assert rows["kill-switch-test"].last_run is not None and not rows["kill-switch-test"].overdue
    assert Drill.objects.filter(status=Status.COMPLETED).count() == 1
    assert set(
        DrillType.objects.get(slug="failover-test").participants.values_list("username", flat=True)
    ) == {
        "demo-lead",
        "demo-responder",
    }


def test_an_edited_rrule_withdraws_the_old_untouched_occurrences_and_keeps_what_people_touched():
    lead = make_user(role="lead")
    with time_machine.travel(NOW, tick=False):
        services.drills_generate()
    kind = DrillType.objects.get(slug="kill-switch-test")
    first, second, third = Drill.objects.filter(drill_type=kind).order_by("original_at")[:3]
    services.drill_move(drill=second, scheduled_for=second.scheduled_for + timedelta(days=1), actor=lead)
    Drill.objects.filter(pk=third.pk).update(status=Status.ANNOUNCED)
    by_hand = services.drill_schedule(
        drill_type=kind, scheduled_for=NOW + timedelta(days=20, hours=3), actor=lead
    )
    kind.rrule = "FREQ=MONTHLY;BYDAY=+1WE"  # the first Wednesday instead of the first Tuesday
    kind.save(update_fields=["rrule"])
    with time_machine.travel(NOW, tick=False):
        services.drills_generate()
        assert services.drills_generate() == 0
    upcoming = Drill.objects.filter(drill_type=kind, status=Status.SCHEDULED, moved=False, created_by=None)
    assert upcoming.exists() and {d.scheduled_for.weekday() for d in upcoming} == {2}
    kept = set(Drill.objects.filter(drill_type=kind).values_list("pk", flat=True))
    assert {second.pk, third.pk, by_hand.pk} <= kept and first.pk not in kept


def test_a_disabled_type_withdraws_its_untouched_future_occurrences():
    with time_machine.travel(NOW, tick=False):
        services.drills_generate()
        monthly = set(Drill.objects.filter(drill_type__slug="kill-switch-test").values_list("pk", flat=True))
        assert Drill.objects.filter(drill_type__slug="failover-test").exists()
        DrillType.objects.filter(slug="failover-test").update(enabled=False)
        services.drills_generate()
    assert not Drill.objects.filter(drill_type__slug="failover-test").exists()
    still = Drill.objects.filter(drill_type__slug="kill-switch-test").values_list("pk", flat=True)
    assert set(still) == monthly
