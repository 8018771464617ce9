"""The playbook's triage decision tree (section 3), as a pure function."""

from __future__ import annotations

from dataclasses import dataclass

from incidents.models import Severity

SERVICES_DOWN_CHOICES = [
    ("none", "No service is completely down"),
    ("one", "One non-core service is down"),
    ("core", "A core trading service is down"),
]


@dataclass(frozen=True)
class Suggestion:
    severity: Severity
    activate_kill_switch: bool
    path: tuple[str, ...]


def suggest_severity(*, losing_money: bool, services_down: str, degraded: bool) -> Suggestion:
    """Walk the tree: money lost → SEV-1 and halt; a service down → SEV-1/2; degraded → SEV-3; else SEV-4."""
    if losing_money:
        return Suggestion(Severity.SEV1, True, ("Trading is losing money", "Activate kill switch"))
    if services_down == "core":
        return Suggestion(Severity.SEV1, True, ("A core service is completely down",))
    if services_down == "one":
        return Suggestion(Severity.SEV2, True, ("One service is completely down",))
    if degraded:
        return Suggestion(Severity.SEV3, False, ("Performance is degraded",))
    return Suggestion(Severity.SEV4, False, ("No loss, no outage, no degradation",))


def describe_answers(answers: dict[str, object]) -> list[tuple[str, str]]:
    """Question/answer pairs for display, in the tree's order."""
    down = dict(SERVICES_DOWN_CHOICES).get(str(answers.get("services_down")), "—")
    return [
        ("Is trading actively losing money?", "Yes" if answers.get("losing_money") else "No"),
        ("Is any service completely down?", down),
        ("Is performance degraded?", "Yes" if answers.get("degraded") else "No"),
        ("Suggested severity", f"SEV-{answers.get('suggested')}"),
    ]
