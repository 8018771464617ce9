"""Load the playbook data file into the database (idempotent: matched by natural keys)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from incidents.models import Checklist, ChecklistKind, IncidentType, SeverityLevel

PLAYBOOK_FILE = Path(__file__).parent / "data" / "playbook.yaml"


class PlaybookError(ValueError):
    pass


# Sections of the playbook file that other apps load (escalation matrix, communication): name ->
# loader(section data) -> how many rows. Registered from those apps' AppConfig.ready.
_SECTIONS: dict[str, Callable[[Any], int]] = {}


def register_section(name: str, loader: Callable[[Any], int]) -> None:
    _SECTIONS[name] = loader


def read_playbook(path: Path = PLAYBOOK_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"severities", "incident_types", "checklists"} <= data.keys():
        raise PlaybookError(f"{path}: needs severities, incident_types and checklists")
    levels = sorted(s["level"] for s in data["severities"])
    if levels != [1, 2, 3, 4]:
        raise PlaybookError(f"{path}: severities must be levels 1 to 4, got {levels}")
    for c in data["checklists"]:
        if c["kind"] not in ChecklistKind.values:
            raise PlaybookError(f"{path}: unknown checklist kind {c['kind']!r}")
        stray = set(c.get("checks", {})) - {str(i) for i in c["items"]}
        if stray:
            raise PlaybookError(
                f"{path}: checklist {c['kind']}: checks name items it does not have: {sorted(stray)}"
            )
    return data


@transaction.atomic
def load_playbook(path: Path = PLAYBOOK_FILE) -> dict[str, int]:
    data = read_playbook(path)
    for s in data["severities"]:
        SeverityLevel.objects.update_or_create(
            level=s["level"], defaults={k: v for k, v in s.items() if k != "level"}
        )
    for i, t in enumerate(data["incident_types"]):
        defaults = {k: v for k, v in t.items() if k != "slug"} | {"position": i}
        IncidentType.objects.update_or_create(slug=t["slug"], defaults=defaults)
    for c in data["checklists"]:
        Checklist.objects.update_or_create(
            kind=c["kind"], defaults={"title": c["title"], "items": c["items"], "checks": c.get("checks", {})}
        )
    counts = {k: len(data[k]) for k in ("severities", "incident_types", "checklists")}
    for name, loader in _SECTIONS.items():
        if name in data:
            try:
                counts[name] = loader(data[name])
            except (KeyError, TypeError, ValueError) as exc:
                raise PlaybookError(f"{path}: section {name}: {exc}") from exc
    return counts
