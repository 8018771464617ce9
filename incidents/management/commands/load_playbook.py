from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from incidents.playbook import PLAYBOOK_FILE, PlaybookError, load_playbook


class Command(BaseCommand):
    help = "Load severities, incident types, runbooks and checklists from the playbook data file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", type=Path, default=PLAYBOOK_FILE)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = load_playbook(options["file"])
        except (OSError, PlaybookError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            "Playbook loaded: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        )
