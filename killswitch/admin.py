from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, StreamingHttpResponse

from console.admin import ReadOnlyAdmin
from killswitch.export import csv_rows
from killswitch.models import AuditRecord, ResumeRequest, TargetState


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "seq",
        "created_at",
        "actor_name",
        "actor_role",
        "action",
        "target",
        "reason",
        "request_id",
        "ip_address",
    ]
    list_filter = ["action", "target", "actor_role", "created_at"]
    search_fields = ["actor_name", "reason"]
    date_hierarchy = "created_at"
    actions = ["export_csv"]

    @admin.action(description="Export selected records as CSV", permissions=["export"])
    def export_csv(self, request: HttpRequest, queryset: Any) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            csv_rows(queryset.order_by("seq").iterator()), content_type="text/csv"
        )
        response["Content-Disposition"] = 'attachment; filename="killswitch-audit.csv"'
        return response

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("killswitch.export_auditrecord")


@admin.register(ResumeRequest)
class ResumeRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "target", "requested_by", "status", "decided_by", "created_at", "expires_at"]
    list_filter = ["status", "target"]


@admin.register(TargetState)
class TargetStateAdmin(ReadOnlyAdmin):
    list_display = ["target", "condition", "reason", "changed_by", "changed_at", "observed_at"]
