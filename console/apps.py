from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    """What every app shares: sessions, roles, liveness, the admin base, the domain error."""

    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from console import (
            checks,  # noqa: F401  (registers the secrets check)
            metrics,
        )
        from console.roles import on_post_migrate

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="console-sync-roles")
        metrics.register("console.jobs", metrics.JobsCollector())
