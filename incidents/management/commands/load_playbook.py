from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from incidents.playbook import PLAYBOOK_FILE, PlaybookError, current_version, load_playbook


class Command(BaseCommand):
    help = (
        "Adopt the playbook data file (severities, incident types and runbooks, checklists, and the "
        "sections other apps own) as the next playbook version, unless it is the current one."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", type=Path, default=PLAYBOOK_FILE)

    def handle(self, *args: Any, **options: Any) -> None:
        before = current_version()
        try:
            version = load_playbook(options["file"])
        except (OSError, PlaybookError) as exc:
            raise CommandError(str(exc)) from exc
        if before is not None and version.pk == before.pk:
            self.stdout.write(f"Playbook unchanged: version {version.number} is in force.")
            return
        counts = getattr(version, "loaded", {})
        self.stdout.write(
            f"Playbook version {version.number} adopted: "
            + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        )
