from __future__ import annotations

from django.contrib import admin

from drills.models import Drill, DrillType


@admin.register(DrillType)
class DrillTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "rrule", "starts_at", "owner", "grace_days", "enabled"]
    filter_horizontal = ["participants"]


@admin.register(Drill)
class DrillAdmin(admin.ModelAdmin):
    list_display = ["drill_type", "scheduled_for", "status", "moved", "incident"]
    list_filter = ["drill_type", "status"]
    readonly_fields = ["original_at", "announced_at", "started_at", "completed_at", "measured", "incident"]
