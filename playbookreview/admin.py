from __future__ import annotations

from django.contrib import admin

from console.admin import ReadOnlyAdmin
from playbookreview.models import PlaybookProposal


@admin.register(PlaybookProposal)
class PlaybookProposalAdmin(ReadOnlyAdmin):
    """Read-only: proposals change through their pages, where every step is checked and recorded."""

    list_display = ["title", "status", "author", "approver", "base_version", "adopted_version"]
    list_filter = ["status"]
