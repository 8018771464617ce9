from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from console.admin import ReadOnlyAdmin
from incidents.models import (
    Checklist,
    Incident,
    IncidentType,
    PlaybookReview,
    PlaybookVersion,
    SeverityLevel,
    TimelineEvent,
)


class PlaybookDataAdmin(ReadOnlyAdmin):
    """Playbook data: read-only here. The playbook changes only as a whole new version (reviewed, then
    adopted: incidents.playbook.playbook_adopt), so that every change has a number, a reason and a
    diff, and incidents keep the version they started with."""

    NOTICE = (
        "The playbook is versioned: this table shows the version in force and cannot be edited here. "
        "A change is a new playbook version (see the Playbook pages and `manage.py load_playbook`)."
    )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        messages.info(request, self.NOTICE)
        return super().changelist_view(request, extra_context)

    def change_view(  # type: ignore[override]
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        messages.info(request, self.NOTICE)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(SeverityLevel)
class SeverityLevelAdmin(PlaybookDataAdmin):
    list_display = [
        "level",
        "name",
        "response_minutes",
        "kill_switch_default",
        "commander_required",
        "pre_recovery_required",
    ]


@admin.register(IncidentType)
class IncidentTypeAdmin(PlaybookDataAdmin):
    list_display = ["name", "slug", "playbook_section", "kill_switch_reason", "position"]


@admin.register(Checklist)
class ChecklistAdmin(PlaybookDataAdmin):
    list_display = ["title", "kind"]


@admin.register(PlaybookVersion)
class PlaybookVersionAdmin(PlaybookDataAdmin):
    list_display = ["number", "created_at", "created_by", "source", "note"]
    exclude = ["document"]


@admin.register(PlaybookReview)
class PlaybookReviewAdmin(ReadOnlyAdmin):
    list_display = ["reviewed_at", "reviewed_by", "version", "note"]


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    """Read-only here: incidents change only through the console's services (and their timeline)."""

    list_display = ["id", "title", "severity", "status", "commander", "detected_at", "is_drill"]
    list_filter = ["status", "severity", "incident_type", "is_drill"]
    search_fields = ["title"]


@admin.register(TimelineEvent)
class TimelineEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "incident", "kind", "actor", "created_at", "old_value", "new_value"]
    list_filter = ["kind"]
    list_select_related = ["incident", "actor"]
