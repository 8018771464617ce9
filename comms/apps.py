from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, LEAD

_EDIT = [
    "view_messagetemplate",
    "change_messagetemplate",
    "view_route",
    "change_route",
    "view_setting",
    "change_setting",
]


class CommsConfig(AppConfig):
    """The playbook's communication plan (section 5): routing, templates, compose, update cadence."""

    name = "comms"
    verbose_name = "Communication"
    role_permissions = {LEAD: ["view_messagetemplate", "view_route"], ADMIN: _EDIT}

    def ready(self) -> None:
        from comms import panels, playbook, services
        from incidents import timeline
        from incidents.playbook import register_section
        from notify import services as notify_services

        register_section("communication", playbook.load)
        timeline.listen("comms", services.on_timeline)
        timeline.register_kind(services.KIND_SENT, "Message sent")
        timeline.register_kind(services.KIND_REMINDER, "Update reminder")
        timeline.register_kind(services.KIND_DELIVERY, "Delivery")
        notify_services.on_outcomes(services.deliveries_record)
        panels.register()
