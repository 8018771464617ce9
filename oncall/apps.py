from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_SEE = ["view_rotation", "view_override"]
_EDIT = [
    *_SEE,
    "add_rotation",
    "change_rotation",
    "delete_rotation",
    "add_override",
    "change_override",
    "delete_override",
]


class OncallConfig(AppConfig):
    """Who holds each of the playbook's duties (on-call engineer, tech lead, executive), when."""

    name = "oncall"
    verbose_name = "On-call"
    # Everyone sees the rota; leads and admins keep it.
    role_permissions = {VIEWER: _SEE, RESPONDER: _SEE, EXECUTIVE: _SEE, LEAD: _EDIT, ADMIN: _EDIT}

    def ready(self) -> None:
        from console import notices
        from oncall import calendar
        from oncall.notices import coverage

        notices.register("oncall-coverage", coverage)
        calendar.register_source()
