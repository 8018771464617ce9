from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drills.models import Drill, DrillType


def drill_type(slug: str = "kill-switch-test", **fields: Any) -> DrillType:
    """A drill type as the playbook loads it (the autouse fixture loads the playbook), changed by `fields`."""
    kind = DrillType.objects.get(slug=slug)
    for name, value in fields.items():
        setattr(kind, name, value)
    kind.save()
    return kind


def drill(kind: DrillType | None = None, at: datetime | None = None, **fields: Any) -> Drill:
    kind = kind or drill_type()
    at = at or datetime(2026, 12, 8, 10, tzinfo=UTC)
    return Drill.objects.create(drill_type=kind, original_at=at, scheduled_for=at, **fields)
