from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_SEE = [
    "view_incident",
    "view_timelineevent",
    "view_severitylevel",
    "view_incidenttype",
    "view_checklist",
    "view_playbookversion",
    "view_playbookreview",
]
_RESPOND = [*_SEE, "add_incident", "act_on_incident"]
_LEAD = [*_RESPOND, "change_incident", "override_prerecovery", "review_playbook"]


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"
    # What each role may do with incidents and the playbook data (console.roles keeps the groups in
    # step). Users and roles themselves are managed by superusers only. The playbook data is read-only
    # for everyone: it changes as a new version (incidents.playbook), never row by row.
    role_permissions = {
        VIEWER: _SEE,
        EXECUTIVE: _SEE,
        RESPONDER: _RESPOND,
        LEAD: _LEAD,
        ADMIN: _LEAD,
    }

    def ready(self) -> None:
        from console import calendar, notices
        from incidents import metrics, playbook_pages, services, timeline

        metrics.register()
        timeline.listen("incidents-monitoring", services.monitoring_retriggers)
        notices.register("playbook-review", playbook_pages.review_notice)
        calendar.register("playbook-review", "Playbook review", playbook_pages.review_events)
