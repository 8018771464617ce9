from __future__ import annotations

from django.contrib import admin

from comms.models import MessageTemplate, Route, Setting
from incidents.admin import PlaybookDataAdmin

# Routes, templates and the summary channel are the playbook's `communication` section: they change
# with a new playbook version, never here.


@admin.register(MessageTemplate)
class MessageTemplateAdmin(PlaybookDataAdmin):
    list_display = ["kind", "title"]


@admin.register(Route)
class RouteAdmin(PlaybookDataAdmin):
    list_display = ["severity", "channel", "update_every_minutes"]


@admin.register(Setting)
class SettingAdmin(PlaybookDataAdmin):
    list_display = ["name", "value"]
