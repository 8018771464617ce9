from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import timezone

from console.notices import Notice
from oncall import selectors
from oncall.models import Duty


def coverage(user: Any) -> list[Notice]:
    """Leads see every uncovered stretch of the next 14 days, merged per duty."""
    if not user.has_perm("oncall.change_rotation"):
        return []
    labels = dict(Duty.choices)
    notices = []
    for gap in selectors.coverage_gaps():
        start, end = timezone.localtime(gap.start), timezone.localtime(gap.end)
        notices.append(
            Notice(
                "warning",
                f"Nobody is on call as {labels[gap.duty].lower()} from {start:%a %d %b %H:%M} to "
                f"{end:%a %d %b %H:%M} {start:%Z}.",
                reverse("oncall:index"),
                "On-call",
            )
        )
    return notices
