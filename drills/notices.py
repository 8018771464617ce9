from __future__ import annotations

from typing import Any

from django.urls import reverse

from console.notices import Notice
from drills import selectors


def overdue(user: Any) -> list[Notice]:
    """Everyone with a role sees each drill type without a completed run within its period + grace."""
    if not user.has_perm("drills.view_drill"):
        return []
    return [
        Notice(
            "warning",
            f"Drill overdue: {row.drill_type.name} ({row.frequency.lower()}) has not run since "
            + (f"{row.last_run:%Y-%m-%d}" if row.last_run else "the programme started")
            + f"; due by {row.due_by:%Y-%m-%d}.",
            reverse("drills:index"),
            "Drills",
        )
        for row in selectors.overdue_types()
    ]
