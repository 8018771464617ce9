from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_SEE = ["view_drilltype", "view_drill"]
_RUN = [*_SEE, "run_drill"]
_LEAD = [*_RUN, "add_drill", "change_drill", "change_drilltype", "review_drill"]


class DrillsConfig(AppConfig):
    """The drill programme (playbook section 9): its calendar, announcements, drills run as marked
    incidents through the real detection path, their measured times and reviews."""

    name = "drills"
    verbose_name = "Drills"
    # Everyone with a role reads; responders run drills and take part; leads and admins schedule,
    # move, cancel and review them.
    role_permissions = {
        VIEWER: _SEE,
        EXECUTIVE: _SEE,
        RESPONDER: _RUN,
        LEAD: _LEAD,
        ADMIN: [*_LEAD, "add_drilltype"],
    }

    def ready(self) -> None:
        from console import notices
        from drills import calendar, metrics, playbook, services
        from drills import notices as drill_notices
        from escalation.services import provide_drill_participants
        from incidents import timeline
        from incidents.playbook import register_section

        register_section("drills", playbook.load)
        timeline.register_kind(services.TIMELINE_KIND, "Drill")
        provide_drill_participants(services.participants_of_incident)
        calendar.register_source()
        notices.register("drills-overdue", drill_notices.overdue)
        metrics.register()
