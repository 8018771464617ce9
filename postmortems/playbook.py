"""Loads the playbook file's `postmortems` section: each severity's requirement and deadline."""

from __future__ import annotations

from typing import Any

from postmortems.models import Required, Requirement


def load(section: list[dict[str, Any]]) -> int:
    """Create what is missing; keep what an admin edited (the file gives the defaults)."""
    for row in section:
        level = int(row["level"])
        if level not in (1, 2, 3, 4):
            raise ValueError(f"level {level} is not a severity")
        required = str(row["required"])
        if required not in Required.values:
            raise ValueError(f"level {level}: required must be one of {Required.values}")
        hours = row.get("deadline_hours")
        if required != Required.NO and not hours:
            raise ValueError(f"level {level}: a post-mortem that may be written needs deadline_hours")
        Requirement.objects.get_or_create(
            severity=level, defaults={"required": required, "deadline_hours": hours or None}
        )
    return len(section)
