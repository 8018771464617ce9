from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, LEAD

# Read-only: routes, templates and the summary channel are the playbook's communication section and
# change with a new playbook version (incidents.playbook), not row by row.
_SEE_ALL = ["view_messagetemplate", "view_route", "view_setting"]


class CommsConfig(AppConfig):
    """The playbook's communication plan (section 5): routing, templates, compose, update cadence."""

    name = "comms"
    verbose_name = "Communication"
    role_permissions = {LEAD: ["view_messagetemplate", "view_route"], ADMIN: _SEE_ALL}

    def ready(self) -> None:
        from django.conf import settings

        from comms import panels, playbook, services
        from console.selectors import expect_job
        from incidents import timeline
        from incidents.playbook import register_section
        from notify import services as notify_services

        register_section("communication", playbook.load, playbook.validate)
        timeline.listen("comms", services.on_timeline)
        timeline.register_kind(services.KIND_SENT, "Message sent")
        timeline.register_kind(services.KIND_REMINDER, "Update reminder")
        timeline.register_kind(services.KIND_DELIVERY, "Delivery")
        notify_services.on_outcomes(services.deliveries_record)
        panels.register()
        expect_job("playbook review", lambda: settings.PLAYBOOK_REVIEW_SWEEP_SECONDS)
