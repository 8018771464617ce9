from __future__ import annotations

from django.contrib import admin

from console.admin import ReadOnlyAdmin
from detection.models import MonitoredService, PrometheusRule, Signal


@admin.register(MonitoredService)
class MonitoredServiceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "url",
        "check_kind",
        "judge",
        "core",
        "incident_type",
        "enabled",
        "state",
        "last_checked_at",
    ]
    list_filter = ["core", "enabled", "state", "check_kind", "incident_type"]
    list_select_related = ["incident_type"]
    readonly_fields = [
        "state",
        "failures",
        "successes",
        "last_checked_at",
        "last_latency_ms",
        "last_detail",
        "last_reply",
        "checks_up",
        "checks_degraded",
        "checks_down",
    ]


@admin.register(PrometheusRule)
class PrometheusRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "expr",
        "comparison",
        "threshold",
        "for_seconds",
        "severity",
        "incident_type",
        "enabled",
        "state",
    ]
    list_filter = ["enabled", "state", "severity", "incident_type"]
    list_select_related = ["incident_type"]
    readonly_fields = ["state", "pending_since", "last_value", "last_evaluated_at", "last_error"]


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "source", "status", "severity", "incident_type", "title", "incident"]
    list_filter = ["source", "status", "severity"]
    search_fields = ["title", "fingerprint"]
    list_select_related = ["incident"]
