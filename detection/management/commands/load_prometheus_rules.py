from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from detection.prometheus import RULES_FILE, RulesFileError, load_rules


class Command(BaseCommand):
    help = (
        "Create or update the Prometheus rules from the data file, by name (idempotent). "
        "`enabled` applies only to rules created now; rules missing from the file are left alone."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", type=Path, default=RULES_FILE)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = load_rules(options["file"])
        except (OSError, RulesFileError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Prometheus rules loaded: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
