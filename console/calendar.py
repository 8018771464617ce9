"""What the console's calendar shows, from every app: drills, post-mortem deadlines, on-call handoffs.

An app registers a source from its AppConfig.ready: a kind (its colour and legend entry), a label,
and a function giving its events between two moments for a person. The calendar page and the
calendar feeds ask every source, so no app imports another to show its dates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # the source's kind: its colour (CSS class cal-<kind>) and legend entry
    title: str
    start: datetime
    end: datetime | None = None  # None: a moment (a deadline, a handoff)
    url: str = ""
    uid: str = ""  # stable across reads: calendar feeds key on it


@dataclass(frozen=True)
class Source:
    kind: str
    label: str
    events: Callable[[datetime, datetime, Any], list[Event]]


_SOURCES: dict[str, Source] = {}


def register(kind: str, label: str, events: Callable[[datetime, datetime, Any], list[Event]]) -> None:
    _SOURCES[kind] = Source(kind, label, events)


def sources() -> list[Source]:
    return sorted(_SOURCES.values(), key=lambda s: s.kind)


def events(start: datetime, end: datetime, user: Any, *, kinds: list[str] | None = None) -> list[Event]:
    """Every source's events overlapping [start, end) for `user`, in time order."""
    found = [
        event
        for source in sources()
        if kinds is None or source.kind in kinds
        for event in source.events(start, end, user)
    ]
    return sorted(found, key=lambda e: (e.start, e.kind, e.title))
