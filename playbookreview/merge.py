"""Re-basing a proposal: its changes (relative to the version it was written against) applied on top
of the version in force, section by section.

A three-way merge at the level of the playbook's top-level sections, and of the keys of a section
that is a mapping (`communication.routes`, `communication.templates`…): a section only one side
changed takes that side; one both changed the same way is no conflict; one both changed differently
is a conflict, named. Lists (severities, incident types, checklists…) are compared whole: reordering
or editing items inside one is a change to the section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from incidents.playbook import canonical

_MISSING: Any = object()


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return canonical(a) == canonical(b)


@dataclass
class Merge:
    document: dict[str, Any]
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts


def changed_sections(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The top-level sections `new` changes, adds or removes, in `new`'s order then removed ones."""
    names = [*new, *(k for k in old if k not in new)]
    return [k for k in names if not _same(old.get(k, _MISSING), new.get(k, _MISSING))]


def three_way(
    base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any], *, take_theirs: bool = False
) -> Merge:
    """Apply mine's changes to base on top of theirs. A conflicting part keeps mine's version, or
    theirs' with `take_theirs` (the author then redoes that change by hand); either way it is named in
    `conflicts`. Mine's key order first, then what only theirs has."""
    return _merge(base, mine, theirs, take_theirs=take_theirs, depth=1, path="")


def _merge(
    base: dict[str, Any],
    mine: dict[str, Any],
    theirs: dict[str, Any],
    *,
    take_theirs: bool,
    depth: int,
    path: str,
) -> Merge:
    result = Merge({})
    keys = [*mine, *(k for k in theirs if k not in mine)]
    for key in keys:
        b, m, t = base.get(key, _MISSING), mine.get(key, _MISSING), theirs.get(key, _MISSING)
        name = f"{path}.{key}" if path else key
        if _same(m, b):  # not ours to change: whatever theirs says (also a removal by them)
            value = t
        elif _same(t, b) or _same(m, t):  # only we changed it, or both the same way
            value = m
        elif depth > 0 and all(isinstance(x, dict) for x in (b, m, t)):
            inner = _merge(b, m, t, take_theirs=take_theirs, depth=depth - 1, path=name)
            result.conflicts += inner.conflicts
            value = inner.document
        else:
            result.conflicts.append(name)
            value = t if take_theirs else m
        if value is not _MISSING:
            result.document[key] = value
    return result
