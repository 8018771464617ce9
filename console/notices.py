"""Warnings other apps put on the console home and the status board (e.g. "nobody is on call on
Saturday 02:00-09:00"), so those pages never import the apps that raise them. An app registers a
function from its AppConfig.ready; it gets the user and returns the notices that person should see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Notice:
    level: str  # "warning" or "info"
    text: str
    link: str = ""
    link_text: str = ""


_SOURCES: dict[str, Callable[[Any], list[Notice]]] = {}


def register(name: str, source: Callable[[Any], list[Notice]]) -> None:
    _SOURCES[name] = source


def notices_for(user: Any) -> list[Notice]:
    return [notice for source in list(_SOURCES.values()) for notice in source(user)]
