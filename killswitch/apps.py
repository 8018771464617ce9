from __future__ import annotations

from django.apps import AppConfig


class KillswitchConfig(AppConfig):
    name = "killswitch"
    verbose_name = "Kill switch"

    def ready(self) -> None:
        from killswitch import permissions_audit

        permissions_audit.connect()
