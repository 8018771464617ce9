from __future__ import annotations

from django import forms
from django.contrib import admin

from comms.models import MessageTemplate, Route, Setting
from comms.playbook import check_template


class TemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["kind", "title", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 14, "cols": 90})}

    def clean(self) -> dict:
        data = super().clean() or {}
        for field in ("title", "text"):
            try:
                check_template(data.get(field, ""))
            except ValueError as exc:
                self.add_error(field, str(exc))
        return data


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ["kind", "title"]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["severity", "channel", "update_every_minutes"]


@admin.register(Setting)
class SettingAdmin(admin.ModelAdmin):
    list_display = ["name", "value"]
