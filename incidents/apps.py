from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_SEE = ["view_incident", "view_timelineevent", "view_severitylevel", "view_incidenttype", "view_checklist"]
_RESPOND = [*_SEE, "add_incident", "act_on_incident"]
_LEAD = [*_RESPOND, "change_incident", "override_prerecovery"]
_PLAYBOOK = [
    "add_severitylevel",
    "change_severitylevel",
    "add_incidenttype",
    "change_incidenttype",
    "add_checklist",
    "change_checklist",
]


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"
    # What each role may do with incidents and the playbook data (console.roles keeps the groups in
    # step). Users and roles themselves are managed by superusers only.
    role_permissions = {
        VIEWER: _SEE,
        EXECUTIVE: _SEE,
        RESPONDER: _RESPOND,
        LEAD: _LEAD,
        ADMIN: [*_LEAD, *_PLAYBOOK],
    }

    def ready(self) -> None:
        from incidents import metrics, services, timeline

        metrics.register()
        timeline.listen("incidents-monitoring", services.monitoring_retriggers)
