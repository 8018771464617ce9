from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from incidents.models import Checklist, Incident, IncidentType, SeverityLevel, TimelineEvent


@admin.register(SeverityLevel)
class SeverityLevelAdmin(admin.ModelAdmin):
    list_display = ["level", "name", "response_minutes", "kill_switch_default", "commander_required"]


@admin.register(IncidentType)
class IncidentTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "playbook_section", "kill_switch_reason", "position"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Checklist)
class ChecklistAdmin(admin.ModelAdmin):
    list_display = ["title", "kind"]


@admin.register(Incident)
class IncidentAdmin(GuardedModelAdmin):
    """Read-only here: incidents change only through the console's services (and their timeline)."""

    list_display = ["id", "title", "severity", "status", "commander", "detected_at", "is_drill"]
    list_filter = ["status", "severity", "incident_type", "is_drill"]
    search_fields = ["title"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin):
    list_display = ["id", "incident", "kind", "actor", "created_at", "old_value", "new_value"]
    list_filter = ["kind"]
    list_select_related = ["incident", "actor"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
