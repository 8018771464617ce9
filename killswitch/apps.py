from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_SEE = ["view_targetstate", "view_resumerequest"]
_LEAD = [
    *_SEE,
    "activate_killswitch",
    "request_resume",
    "approve_resume",
    "view_auditrecord",
    "export_auditrecord",
]


class KillswitchConfig(AppConfig):
    name = "killswitch"
    verbose_name = "Kill switch"
    # What each role may do with the kill switch (console.roles keeps the groups in step).
    role_permissions = {
        VIEWER: _SEE,
        EXECUTIVE: _SEE,
        RESPONDER: [*_SEE, "activate_killswitch"],
        LEAD: _LEAD,
        ADMIN: _LEAD,
    }

    def ready(self) -> None:
        from django.conf import settings

        from console.selectors import expect_job
        from incidents.timeline import register_kind
        from killswitch import metrics, offline, panels, permissions_audit, recovery
        from killswitch.models import TIMELINE_KIND

        permissions_audit.connect()
        panels.register()
        offline.register()
        metrics.register()
        recovery.register()
        register_kind(TIMELINE_KIND, "Kill switch")
        # Reconcile's heartbeats ("kill switch <target>"): overdue after two missed runs.
        expect_job("kill switch", lambda: settings.KILLSWITCH_RECONCILE_SECONDS)
