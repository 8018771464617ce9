from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_VIEW = ["view_postmortem", "view_requirement"]


class PostmortemsConfig(AppConfig):
    """Post-mortems (playbook section 8): created when an incident resolves, written, reviewed and
    published in the console, their deadlines enforced."""

    name = "postmortems"
    verbose_name = "Post-mortems"
    role_permissions = {
        VIEWER: _VIEW,
        RESPONDER: _VIEW,
        EXECUTIVE: _VIEW,
        LEAD: [*_VIEW, "change_postmortem", "assign_postmortem"],
        ADMIN: [*_VIEW, "change_postmortem", "assign_postmortem", "change_requirement"],
    }

    def ready(self) -> None:
        from console import calendar, metrics
        from console import notices as console_notices
        from incidents import timeline
        from incidents.playbook import register_section
        from postmortems import notices, panels, playbook, services

        register_section("postmortems", playbook.load)
        timeline.listen("postmortems", services.on_timeline)
        timeline.register_kind(services.KIND, "Post-mortem")
        panels.register()
        console_notices.register("postmortems-overdue", notices.overdue_notices)
        metrics.register("postmortems", notices.PostMortemCollector())
        calendar.register("postmortem", "Post-mortem deadlines", notices.calendar_events)
