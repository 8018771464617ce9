from __future__ import annotations

from datetime import date, time
from typing import Any

from oncall import services
from oncall.models import Duty, Rotation
from tests.incidents.factories import make_user


def rotation(
    *members: Any,
    name: str = "primary",
    duty: str = Duty.ONCALL_ENGINEER,
    time_zone: str = "UTC",
    effective_from: date = date(2026, 1, 5),  # a Monday
    handoff_time: time = time(9, 0),
    handoff_weekday: int | None = 0,
    shift_hours: int = 168,
) -> Rotation:
    """A rotation made through the service, as leads make them; members default to two responders."""
    people = list(members) or [make_user(role="responder"), make_user(role="responder")]
    return services.rotation_save(
        rotation=None,
        name=name,
        duty=duty,
        time_zone=time_zone,
        effective_from=effective_from,
        handoff_time=handoff_time,
        handoff_weekday=handoff_weekday,
        shift_hours=shift_hours,
        members=people,
    )
