"""The playbook's triage decision tree (section 3), as pure functions.

    Is trading actively losing money?  yes → SEV-1, activate the kill switch
    └ no: Is any service completely down?  a core one → SEV-1, one other → SEV-2
          └ no: Is performance degraded?  yes → SEV-3, no → SEV-4

The tree stops at the answer that decides: later questions are not asked, and their answers (a
browser without JavaScript shows every question) are not recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from incidents.models import Severity

SERVICES_DOWN_CHOICES = [
    ("none", "No service is completely down"),
    ("one", "One non-core service is down"),
    ("core", "A core trading service is down"),
]
QUESTIONS = {
    "losing_money": "Is trading actively losing money?",
    "services_down": "Is any service completely down?",
    "degraded": "Is performance degraded?",
}


@dataclass(frozen=True)
class Suggestion:
    severity: Severity
    path: tuple[str, ...]
    # The tree itself says halt (money is being lost), whatever the level's kill-switch default.
    tree_halts: bool = False


@dataclass(frozen=True)
class Walk:
    """How far the answers take the tree: the questions asked, in order, and the suggestion once
    an answer decides (None while the next question is unanswered)."""

    asked: tuple[str, ...]
    suggestion: Suggestion | None

    @property
    def next_question(self) -> str | None:
        return None if self.suggestion else QUESTIONS[self.asked[-1]]

    def answers(self, given: Mapping[str, str | None]) -> dict[str, Any]:
        """The answers as recorded on an incident: booleans, and None for questions not asked."""
        recorded: dict[str, Any] = dict.fromkeys(QUESTIONS)
        for name in self.asked:
            value = given.get(name)
            recorded[name] = value if name == "services_down" else value == "yes"
        return recorded


def walk(answers: Mapping[str, str | None]) -> Walk:
    """Ask the questions in order with the given answers ("yes"/"no", a SERVICES_DOWN_CHOICES key,
    or empty), stopping at the first that decides the severity or is unanswered."""
    money = answers.get("losing_money")
    if not money:
        return Walk(("losing_money",), None)
    if money == "yes":
        return Walk(
            ("losing_money",),
            Suggestion(Severity.SEV1, ("Trading is losing money", "Activate kill switch"), tree_halts=True),
        )
    down = answers.get("services_down")
    if not down:
        return Walk(("losing_money", "services_down"), None)
    if down == "core":
        return Walk(
            ("losing_money", "services_down"),
            Suggestion(Severity.SEV1, ("A core service is completely down",)),
        )
    if down == "one":
        return Walk(
            ("losing_money", "services_down"), Suggestion(Severity.SEV2, ("One service is completely down",))
        )
    degraded = answers.get("degraded")
    asked = ("losing_money", "services_down", "degraded")
    if not degraded:
        return Walk(asked, None)
    if degraded == "yes":
        return Walk(asked, Suggestion(Severity.SEV3, ("Performance is degraded",)))
    return Walk(asked, Suggestion(Severity.SEV4, ("No loss, no outage, no degradation",)))


def below_suggestion_message(chosen: int, suggested: int) -> str:
    return f"SEV-{chosen} is lower than the decision tree's SEV-{suggested}: say why."


def suggested_severity(answers: Mapping[str, Any] | None) -> int | None:
    """The severity an incident's recorded answers suggested, if it has any."""
    value = (answers or {}).get("suggested")
    return value if isinstance(value, int) and value in Severity.values else None


def describe_answers(answers: dict[str, object]) -> list[tuple[str, str]]:
    """Question/answer pairs for display, in the tree's order: only the questions that were asked."""
    rows = []
    for name, question in QUESTIONS.items():
        value = answers.get(name)
        if value is None:
            continue
        if name == "services_down":
            rows.append((question, dict(SERVICES_DOWN_CHOICES).get(str(value), "—")))
        else:
            rows.append((question, "Yes" if value else "No"))
    rows.append(("Suggested severity", f"SEV-{answers.get('suggested')}"))
    return rows
