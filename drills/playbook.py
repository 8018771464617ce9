"""Loads the playbook file's `drills` section (section 9's table); what was edited since is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model

from drills.models import DrillType, validate_rrule, validate_scenario, validate_targets


def load(section: list[dict[str, Any]]) -> int:
    created = 0
    for position, row in enumerate(section):
        validate_rrule(row["rrule"])
        validate_scenario(row["scenario"])
        validate_targets(row.get("targets", {}))
        starts = datetime.fromisoformat(str(row["starts"]))
        if starts.tzinfo is None:
            raise ValueError(f"drill {row['slug']}: starts needs a UTC offset")
        owner = get_user_model().objects.filter(username=row["owner"]).first() if row.get("owner") else None
        _, made = DrillType.objects.get_or_create(
            slug=row["slug"],
            defaults={
                "name": row["name"],
                "rrule": row["rrule"],
                "starts_at": starts,
                "duration_minutes": int(row.get("duration_minutes", 60)),
                "grace_days": int(row.get("grace_days", 7)),
                "scenario": row["scenario"],
                "targets": row.get("targets", {}),
                "owner": owner,
                "position": position,
            },
        )
        created += made
    return created
