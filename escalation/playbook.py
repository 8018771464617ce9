"""The playbook's `escalation` section (the matrix): validated with the whole playbook and loaded
when a playbook version is adopted (the version is the matrix: it replaces the steps)."""

from __future__ import annotations

from typing import Any

from escalation.models import PolicyStep, StepAction, Target, Until
from incidents.playbook import check_fields, list_of, non_negative_int, severity_level


def _choice(choices: Any) -> Any:
    return lambda v: "" if v in choices.values else f"must be one of {', '.join(choices.values)}"


_STEP = {
    "after_minutes": non_negative_int,
    "target": _choice(Target),
    "action": _choice(StepAction),
    "until": _choice(Until),
}


def validate(section: Any) -> list[str]:
    errors: list[str] = []
    seen: set[int] = set()
    for i, level in enumerate(list_of(section, "", errors)):
        path = f"[{i}]"
        if not check_fields(
            level, path, {"level": severity_level, "steps": lambda v: ""}, errors, required=("level", "steps")
        ):
            continue
        if not severity_level(level.get("level")):
            if level["level"] in seen:
                errors.append(f"{path}.level: SEV-{level['level']} appears twice")
            seen.add(level["level"])
        for j, step in enumerate(list_of(level.get("steps", []), f"{path}.steps", errors)):
            check_fields(step, f"{path}.steps[{j}]", _STEP, errors, required=tuple(_STEP))
    return errors


def load(section: list[dict[str, Any]]) -> int:
    """Replace the matrix with the section's (running chains keep the steps they copied)."""
    PolicyStep.objects.all().delete()
    rows = [
        PolicyStep(
            severity=int(level["level"]),
            position=position,
            after_minutes=int(step["after_minutes"]),
            target=step["target"],
            action=step["action"],
            until=step["until"],
        )
        for level in section
        for position, step in enumerate(level["steps"])
    ]
    PolicyStep.objects.bulk_create(rows)
    return len(rows)
