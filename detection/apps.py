from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, LEAD


class DetectionConfig(AppConfig):
    name = "detection"
    verbose_name = "Detection"
    # Admins tune what the console watches; the status board itself needs only a role. What a
    # checked service answered (its body can be anything an edited URL reaches) is for leads and up.
    role_permissions = {
        LEAD: ["view_health_reply"],
        ADMIN: [
            "view_monitoredservice",
            "change_monitoredservice",
            "view_prometheusrule",
            "change_prometheusrule",
            "view_signal",
            "view_health_reply",
        ],
    }

    def ready(self) -> None:
        from detection import facts, metrics, panels, snapshots
        from incidents import timeline

        panels.register()
        metrics.register()
        facts.register()
        timeline.register_kind(snapshots.KIND, "CDB status")
        timeline.listen("detection-snapshots", snapshots.on_timeline)
