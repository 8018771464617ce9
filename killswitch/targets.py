"""Configured kill-switch targets: name → backend, from settings.KILLSWITCH_TARGETS.

Format: `name=spec;name=spec`, spec `file:/path/to/.cdb_kill_switch.state` or `http://host:8002`.
The first target is production, whatever its name. The drill target is the one
KILLSWITCH_DRILL_TARGET names or, when that is empty, the second one; any others (paper trading, a
staging stack) can be halted from the kill-switch page but belong to no incident.
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
    drill: bool = False

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

    def serves(self, *, is_drill: bool) -> bool:
        """Whether an incident (a drill or a real one) may act on this target: a real incident on
        production only, a drill never on production."""
        return self.production != is_drill


def parse_targets(value: str, drill: str = "") -> dict[str, Target]:
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
        is_drill = name == drill if drill else i == 1
        targets[name] = Target(name=name, spec=spec, production=i == 0, drill=is_drill)
    if not targets:
        raise ValueError("KILLSWITCH_TARGETS names no target")
    if drill and (drill not in targets or targets[drill].production):
        raise ValueError(
            f"KILLSWITCH_DRILL_TARGET: {drill!r} must name a configured target other than the first "
            "(production)"
        )
    return targets


@cache
def _parsed(value: str, drill: str) -> dict[str, Target]:
    return parse_targets(value, drill)


def all_targets() -> dict[str, Target]:
    return _parsed(settings.KILLSWITCH_TARGETS, settings.KILLSWITCH_DRILL_TARGET)


def get_target(name: str) -> Target:
    try:
        return all_targets()[name]
    except KeyError:
        raise ValueError(f"Unknown kill-switch target {name!r}") from None


def production_target() -> Target:
    return next(iter(all_targets().values()))


def drill_target() -> Target | None:
    return next((t for t in all_targets().values() if t.drill), None)


def target_for(*, is_drill: bool) -> Target | None:
    """The target an incident's kill-switch controls act on: the drill target for a drill (None when
    none is configured), production for a real incident."""
    return drill_target() if is_drill else production_target()
