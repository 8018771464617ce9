from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from console import metrics as console_metrics
from console.selectors import has_role

log = logging.getLogger(__name__)


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The top bar's data-age indicator, re-fetched by every page every 5 s (one query)."""
    if not has_role(request.user):
        raise PermissionDenied("The console's status needs a role.")
    return render(request, "console/liveness.html")


@require_GET
@login_not_required  # Prometheus: a bearer token or an allowed network, never a session
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (console/metrics.py); 401 without METRICS_TOKEN or an allowed address."""
    if not console_metrics.scrape_allowed(request):
        response = HttpResponse("Missing or wrong bearer token.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    try:
        body = console_metrics.exposition()
    except DatabaseError:
        # Prometheus records the failed scrape (up == 0), which is itself the alert.
        log.exception("Metrics: the database did not answer")
        return HttpResponse("The database did not answer.\n", status=503, content_type="text/plain")
    # Text format 0.0.4: what generate_latest writes, and what every Prometheus reads.
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
