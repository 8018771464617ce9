from __future__ import annotations

from django.contrib import admin

from actions.models import ActionItem


@admin.register(ActionItem)
class ActionItemAdmin(admin.ModelAdmin):
    """Read-only: items change through the console, so each change reaches the incident's timeline."""

    list_display = ("title", "incident", "origin", "owner", "due", "status")
    list_filter = ("status", "origin")
    search_fields = ("title",)

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
