"""Facts the console checks itself, beside the checklist items that name them: "All services healthy"
is true when the health checks say so, not when someone ticks it.

An app registers a fact from its AppConfig.ready (detection: services healthy, metrics normal, no
pending alerts; the kill switch: ready to deactivate). A checklist item names its fact (the
playbook data's `checks`); such an item is judged live, never ticked. A fact that cannot be told
(health polling off, Prometheus not configured) is not true: a lead may still resolve with a
recorded override.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from incidents.models import Incident


@dataclass(frozen=True)
class Fact:
    ok: bool | None  # None: the console cannot tell
    detail: str

    @property
    def state(self) -> str:
        return "ok" if self.ok else "unknown" if self.ok is None else "failing"


_FACTS: dict[str, Callable[[Incident], Fact]] = {}


def register(name: str, check: Callable[[Incident], Fact]) -> None:
    _FACTS[name] = check


def names() -> list[str]:
    return sorted(_FACTS)


def evaluate(incident: Incident, wanted: list[str]) -> dict[str, Fact]:
    """Each named fact now; one that nobody registered says so (and is not true)."""
    result = {}
    for name in dict.fromkeys(wanted):
        check = _FACTS.get(name)
        result[name] = check(incident) if check else Fact(None, f"no check named {name!r} is installed")
    return result
