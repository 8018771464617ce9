from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_SEE = ["view_actionitem"]
_EDIT = [*_SEE, "add_actionitem", "change_actionitem"]


class ActionsConfig(AppConfig):
    """Action items: follow-up work from incidents, post-mortems and drill reviews, with owners and
    due dates, reminded once per due date when overdue."""

    name = "actions"
    verbose_name = "Action items"
    # Responders, leads and admins add and edit; everyone reads. The owner of an item may always move
    # its status (actions.selectors.can_set_status), whatever their role.
    role_permissions = {VIEWER: _SEE, EXECUTIVE: _SEE, RESPONDER: _EDIT, LEAD: _EDIT, ADMIN: _EDIT}

    def ready(self) -> None:
        from django.conf import settings

        from actions import metrics, notices, panels, services, tasks
        from console import notices as console_notices
        from console.selectors import expect_job
        from incidents import timeline

        timeline.register_kind(services.KIND_ADDED, "Action item")
        timeline.register_kind(services.KIND_STATUS, "Action item status")
        panels.register()
        metrics.register()
        console_notices.register("actions-overdue", notices.overdue)
        expect_job(tasks.JOB, lambda: settings.ACTION_ITEMS_REMIND_SECONDS)
