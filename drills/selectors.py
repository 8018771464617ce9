"""Reads of the drill programme: the playbook's table (last run, next scheduled, overdue), the
calendar's drills, the drills a person takes part in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from drills.models import UPCOMING, Drill, DrillType, Status


@dataclass(frozen=True)
class ProgrammeRow:
    drill_type: DrillType
    frequency: str
    last_run: datetime | None
    last_drill_id: int | None
    next_scheduled: datetime | None
    next_drill_id: int | None
    due_by: datetime  # the last run (or the series' start) plus the period plus the grace period
    overdue: bool


def programme(*, now: datetime | None = None) -> list[ProgrammeRow]:
    """One row per enabled drill type. A type is overdue when no drill of it completed within its
    period (from its RRULE) plus its grace period: counted from its last completed drill, or from
    the series' first occurrence when it never ran."""
    now = now or timezone.now()
    kinds = list(
        DrillType.objects.filter(enabled=True)
        .select_related("owner")
        .annotate(
            participant_count=Count("participants", distinct=True),
            last_run=Max("drills__started_at", filter=Q(drills__status=Status.COMPLETED)),
            next_at=Min(
                "drills__scheduled_for", filter=Q(drills__status__in=UPCOMING, drills__scheduled_for__gte=now)
            ),
        )
    )
    last_ids = dict(
        Drill.objects.filter(
            status=Status.COMPLETED, started_at__in=[k.last_run for k in kinds if k.last_run]
        )  # type: ignore[attr-defined]
        .values_list("drill_type_id", "pk")
        .order_by("started_at")
    )
    next_ids = dict(
        Drill.objects.filter(status__in=UPCOMING, scheduled_for__in=[k.next_at for k in kinds if k.next_at])  # type: ignore[attr-defined]
        .values_list("drill_type_id", "pk")
        .order_by("-scheduled_for")
    )
    rows = []
    for kind in kinds:
        last: datetime | None = kind.last_run  # type: ignore[attr-defined]
        due_by = (last or kind.starts_at) + kind.period + timedelta(days=kind.grace_days)
        rows.append(
            ProgrammeRow(
                drill_type=kind,
                frequency=kind.frequency,
                last_run=last,
                last_drill_id=last_ids.get(kind.pk) if last else None,
                next_scheduled=kind.next_at,  # type: ignore[attr-defined]
                next_drill_id=next_ids.get(kind.pk) if kind.next_at else None,  # type: ignore[attr-defined]
                due_by=due_by,
                overdue=now > due_by,
            )
        )
    return rows


def overdue_types(*, now: datetime | None = None) -> list[ProgrammeRow]:
    return [row for row in programme(now=now) if row.overdue]


def drills_between(start: datetime, end: datetime) -> QuerySet[Drill]:
    """Drills overlapping [start, end), cancelled ones included (the calendar shows them struck)."""
    longest = timedelta(minutes=max(DrillType.objects.values_list("duration_minutes", flat=True), default=0))
    return (
        Drill.objects.filter(scheduled_for__lt=end, scheduled_for__gte=start - longest)
        .select_related("drill_type")
        .order_by("scheduled_for")
    )


def drills_of(user: Any) -> QuerySet[Drill]:
    """The drills a person takes part in: as a participant or the owner of its type."""
    return (
        Drill.objects.filter(Q(drill_type__participants=user) | Q(drill_type__owner=user))
        .select_related("drill_type")
        .distinct()
        .order_by("scheduled_for")
    )


def drill_get(pk: int) -> Drill:
    from django.shortcuts import get_object_or_404

    return get_object_or_404(Drill.objects.select_related("drill_type", "incident"), pk=pk)
