from __future__ import annotations

from django.contrib import admin

from oncall.models import CalendarFeed, Override, Rotation, RotationMember


class MemberInline(admin.TabularInline):
    model = RotationMember
    extra = 0
    ordering = ["position"]


@admin.register(Rotation)
class RotationAdmin(admin.ModelAdmin):
    list_display = ["name", "duty", "time_zone", "handoff_weekday", "handoff_time", "shift_hours", "enabled"]
    list_filter = ["duty", "enabled"]
    inlines = [MemberInline]


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ["rotation", "user", "replaces", "starts_at", "ends_at", "reason"]
    list_filter = ["rotation"]


@admin.register(CalendarFeed)
class CalendarFeedAdmin(admin.ModelAdmin):
    list_display = ["user", "rotation", "created_at", "revoked_at"]
    readonly_fields = ["token_digest"]
