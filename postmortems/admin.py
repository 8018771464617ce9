from __future__ import annotations

from django.contrib import admin

from console.admin import ReadOnlyAdmin
from postmortems.models import PostMortem, Requirement


@admin.register(Requirement)
class RequirementAdmin(admin.ModelAdmin):
    """The playbook's post-mortem requirements: editing one applies to incidents resolved after."""

    list_display = ["severity", "required", "deadline_hours"]


@admin.register(PostMortem)
class PostMortemAdmin(ReadOnlyAdmin):
    list_display = ["incident", "status", "author", "approver", "deadline", "current_revision"]
    list_filter = ["status"]
