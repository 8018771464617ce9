from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, LEAD


class EscalationConfig(AppConfig):
    """The escalation matrix (playbook section 4) and each incident's chain of pages."""

    name = "escalation"
    verbose_name = "Escalation"
    role_permissions = {
        LEAD: ["view_policystep", "view_step"],
        # The matrix changes with a new playbook version (incidents.playbook), never row by row.
        ADMIN: ["view_policystep", "view_step"],
    }

    def ready(self) -> None:
        from escalation import panels, playbook, services
        from incidents import timeline
        from incidents.playbook import register_section

        register_section("escalation", playbook.load, playbook.validate)
        timeline.listen("escalation", services.on_timeline)
        timeline.register_kind(services.KIND, "Escalation")
        panels.register()
