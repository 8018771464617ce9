from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, LEAD


class NotifyConfig(AppConfig):
    """Messages leaving the console (channels, the outbox), people's contact points and inboxes."""

    name = "notify"
    verbose_name = "Notifications"
    # Admins set channels up (and send test messages); leads may read the outbox in admin too.
    role_permissions = {
        LEAD: ["view_message", "view_channel"],
        ADMIN: ["view_message", "view_channel", "add_channel", "change_channel", "delete_channel"],
    }
