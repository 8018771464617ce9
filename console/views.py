from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.selectors import has_role


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The top bar's data-age indicator, re-fetched by every page every 5 s (one query)."""
    if not has_role(request.user):
        raise PermissionDenied("The console's status needs a role.")
    return render(request, "console/liveness.html")
