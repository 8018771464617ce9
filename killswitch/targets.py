"""Configured kill-switch targets: name → backend, from settings.KILLSWITCH_TARGETS.

Format: `name=spec;name=spec`, spec `file:/path/to/.cdb_kill_switch.state` or `http://host:8002`.
The first target is production; the others are for paper trading or drills.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

from killswitch.backends import Backend, FileBackend, HttpBackend


@dataclass(frozen=True)
class Target:
    name: str
    spec: str
    production: bool

    @property
    def label(self) -> str:
        return self.name.replace("-", " ").replace("_", " ").capitalize()

    def backend(self) -> Backend:
        if self.spec.startswith(("http://", "https://")):
            return HttpBackend(self.spec, timeout=settings.KILLSWITCH_HTTP_TIMEOUT)
        path = Path(self.spec.removeprefix("file:"))
        return FileBackend(
            path if path.is_absolute() else settings.BASE_DIR / path, timeout=settings.KILLSWITCH_FILE_TIMEOUT
        )


def parse_targets(value: str) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for i, part in enumerate(p.strip() for p in value.split(";") if p.strip()):
        name, sep, spec = part.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise ValueError(f"KILLSWITCH_TARGETS: {part!r} is not name=spec")
        if not spec.startswith(("file:", "http://", "https://")):
            raise ValueError(f"KILLSWITCH_TARGETS: {name} needs file:PATH or an http(s) URL")
        if name in targets:
            raise ValueError(f"KILLSWITCH_TARGETS: {name} is named twice")
        targets[name] = Target(name=name, spec=spec, production=i == 0)
    if not targets:
        raise ValueError("KILLSWITCH_TARGETS names no target")
    return targets


@cache
def _parsed(value: str) -> dict[str, Target]:
    return parse_targets(value)


def all_targets() -> dict[str, Target]:
    return _parsed(settings.KILLSWITCH_TARGETS)


def get_target(name: str) -> Target:
    try:
        return all_targets()[name]
    except KeyError:
        raise ValueError(f"Unknown kill-switch target {name!r}") from None
