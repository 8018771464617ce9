from __future__ import annotations

from django.contrib import admin

from console.admin import ReadOnlyAdmin
from escalation.models import PolicyStep, Step


@admin.register(PolicyStep)
class PolicyStepAdmin(admin.ModelAdmin):
    list_display = ["severity", "position", "after_minutes", "target", "action", "until"]
    list_filter = ["severity", "target"]
    list_editable = ["after_minutes", "target", "action", "until"]


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["incident", "generation", "position", "target", "action", "due_at", "state", "note"]
    list_filter = ["state", "target"]
