from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from detection.health import SERVICES_FILE, ServicesFileError, services_load


class Command(BaseCommand):
    help = (
        "Load CDB's services (detection/data/services.yaml) for health polling. Missing services are "
        "created, disabled unless --enable; existing ones keep their admin edits unless --base-url, "
        "--enable or --disable asks to change their URL or enabled flag."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", type=Path, default=SERVICES_FILE)
        parser.add_argument(
            "--base-url",
            metavar="TEMPLATE",
            help="URL template with {name} and {port}, e.g. http://{name}:{port} or http://10.0.0.5:{port}. "
            "Rewrites the URL of every listed service. Default for new services: CDB_BASE_URL.",
        )
        switch = parser.add_mutually_exclusive_group()
        switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
        switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
        parser.set_defaults(enabled=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = services_load(
                path=options["file"], base_url=options["base_url"], enabled=options["enabled"]
            )
        except (OSError, ServicesFileError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Services loaded: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        if counts["created"] and not options["enabled"]:
            self.stdout.write("New services are disabled: run with --enable (or enable them in admin).")
