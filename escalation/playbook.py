"""Loads the playbook file's `escalation` section (the matrix); what an admin edited is kept."""

from __future__ import annotations

from typing import Any

from escalation.models import PolicyStep, StepAction, Target, Until


def load(section: list[dict[str, Any]]) -> int:
    count = 0
    for level in section:
        severity = int(level["level"])
        if PolicyStep.objects.filter(severity=severity).exists():
            continue  # the matrix of a severity is edited as a whole in admin
        for position, step in enumerate(level["steps"]):
            for field, choices in (("target", Target), ("action", StepAction), ("until", Until)):
                if step[field] not in choices.values:
                    raise ValueError(f"SEV-{severity} step {position}: unknown {field} {step[field]!r}")
            PolicyStep.objects.create(
                severity=severity,
                position=position,
                after_minutes=int(step["after_minutes"]),
                target=step["target"],
                action=step["action"],
                until=step["until"],
            )
            count += 1
    return count
