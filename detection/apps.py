from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN


class DetectionConfig(AppConfig):
    name = "detection"
    verbose_name = "Detection"
    # Admins tune what the console watches; the status board itself needs only a role.
    role_permissions = {
        ADMIN: [
            "view_monitoredservice",
            "change_monitoredservice",
            "view_prometheusrule",
            "change_prometheusrule",
            "view_signal",
        ]
    }

    def ready(self) -> None:
        from detection import panels

        panels.register()
