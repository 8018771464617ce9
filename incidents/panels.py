"""Sections other apps add to the incident page, so that incidents never imports them.

An app registers a `Panel` from its AppConfig.ready: the element id, the template that renders it,
a function giving that template its context for an incident and a viewer, and the slot it fills
(`header`: under the incident's facts; `main`: the page's main column; `side`: beside it). The page
renders every panel of a slot in order; the live poll re-renders them all out of band, so a panel
stays as current as the rest of the page. A panel template's root element carries the panel's id
and `hx-swap-oob="true"` when `oob` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from incidents.models import Incident

SLOTS = ("header", "main", "side")


@dataclass(frozen=True)
class Panel:
    id: str
    template: str
    context: Callable[[Incident, Any], dict[str, Any]]
    slot: str = "main"
    order: int = 100
    # A live panel is re-rendered by every poll that saw a change; a form someone may be typing in
    # is not live (the page renders it once).
    live: bool = True


@dataclass(frozen=True)
class Bound:
    """A panel with its context for one page: what the template includes."""

    id: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)


_PANELS: dict[str, Panel] = {}


def register(panel: Panel) -> None:
    if panel.slot not in SLOTS:
        raise ValueError(f"panel {panel.id}: slot must be one of {SLOTS}")
    _PANELS[panel.id] = panel


def panels_for(incident: Incident, user: Any, *, live_only: bool = False) -> dict[str, list[Bound]]:
    """{slot: [bound panels in order]} for one rendering of the page (the poll: live ones only)."""
    slots: dict[str, list[Bound]] = {slot: [] for slot in SLOTS}
    for panel in sorted(_PANELS.values(), key=lambda p: (p.order, p.id)):
        if live_only and not panel.live:
            continue
        slots[panel.slot].append(Bound(panel.id, panel.template, panel.context(incident, user)))
    return slots
