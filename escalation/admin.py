from __future__ import annotations

from django.contrib import admin

from console.admin import ReadOnlyAdmin
from escalation.models import PolicyStep, Step
from incidents.admin import PlaybookDataAdmin


@admin.register(PolicyStep)
class PolicyStepAdmin(PlaybookDataAdmin):
    """The matrix is the playbook's `escalation` section: it changes with a new playbook version."""

    list_display = ["severity", "position", "after_minutes", "target", "action", "until"]
    list_filter = ["severity", "target"]


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["incident", "generation", "position", "target", "action", "due_at", "state", "note"]
    list_filter = ["state", "target"]
