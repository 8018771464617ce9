from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from console.admin import ReadOnlyAdmin
from incidents.models import Checklist, Incident, IncidentType, SeverityLevel, TimelineEvent


class LinesField(forms.CharField):
    """A JSON list of strings edited as one item per line."""

    widget = forms.Textarea(attrs={"rows": 8, "cols": 90})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def clean(self, value: Any) -> list[str]:
        text = super().clean(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]


def lines_form(model: type, *fields: str) -> type[forms.ModelForm]:
    return type(
        f"{model.__name__}Form",
        (forms.ModelForm,),
        {
            **{f: LinesField(required=False, help_text="One per line.") for f in fields},
            "Meta": type("Meta", (), {"model": model, "fields": "__all__"}),
        },
    )


@admin.register(SeverityLevel)
class SeverityLevelAdmin(admin.ModelAdmin):
    form = lines_form(SeverityLevel, "examples")
    list_display = [
        "level",
        "name",
        "response_minutes",
        "kill_switch_default",
        "commander_required",
        "pre_recovery_required",
    ]


@admin.register(IncidentType)
class IncidentTypeAdmin(admin.ModelAdmin):
    form = lines_form(IncidentType, "runbook_steps", "alert_names")
    list_display = ["name", "slug", "playbook_section", "kill_switch_reason", "position"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Checklist)
class ChecklistAdmin(admin.ModelAdmin):
    form = lines_form(Checklist, "items")
    list_display = ["title", "kind"]


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
