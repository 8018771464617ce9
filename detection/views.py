"""Webhook endpoints for Alertmanager and Grafana, the status board, and the liveness indicator.

A webhook answers 2xx only once its alerts are committed, and 503 when they cannot be: Alertmanager
retries 5xx and drops everything else for good. Committed means stored; a worker routes them into
incidents right after (detection.services).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget

from console.http import HtmxHttpRequest, bearer_matches
from detection import selectors, snapshots
from detection.metrics import WEBHOOK_REQUESTS
from detection.models import Source
from detection.panels import status_context
from detection.services import AlertInput, signals_receive
from detection.webhooks import PayloadError, parse_alertmanager, parse_grafana
from incidents.lifecycle import ActionRefused
from incidents.selectors import incident_get_for_user

log = logging.getLogger(__name__)


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


def _authorised(request: HttpRequest, source: str) -> bool:
    return bearer_matches(request, settings.WEBHOOK_TOKENS.get(source, ""))


def _webhook(request: HttpRequest, source: str, parse: Callable[[Any], list[AlertInput]]) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "Use POST.", Allow="POST")
    if not _authorised(request, source):
        return _error(401, "Missing or wrong bearer token.", WWW_Authenticate='Bearer realm="webhooks"')
    if request.content_type != "application/json":
        return _error(415, f"Content-Type must be application/json, not {request.content_type or 'missing'}.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(400, "Content-Length is not a number.")
    if declared > settings.WEBHOOK_MAX_BYTES:
        return _error(413, f"Body larger than {settings.WEBHOOK_MAX_BYTES} bytes.")
    try:
        raw = request.body
    except RequestDataTooBig:
        return _error(413, f"Body larger than {settings.WEBHOOK_MAX_BYTES} bytes.")
    if len(raw) > settings.WEBHOOK_MAX_BYTES:
        return _error(413, f"Body larger than {settings.WEBHOOK_MAX_BYTES} bytes.")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return _error(400, f"Body is not JSON: {exc}"[:300])
    except RecursionError:
        return _error(400, "Body is not JSON we accept: nested too deeply.")
    try:
        alerts = parse(payload)
    except PayloadError as exc:
        return _error(400, str(exc))
    try:
        result = signals_receive(alerts)
    except DatabaseError:
        log.exception("Could not commit %d %s alerts; asking the sender to retry", len(alerts), source)
        return _error(503, "Could not store the alerts now; retry.", Retry_After="5")
    # Stored: a worker routes them into incidents (woken now; the periodic sweep if the broker is down).
    return JsonResponse({"received": len(alerts), "new": result.new, "duplicates": result.duplicates})


def _counted(request: HttpRequest, source: str, parse: Callable[[Any], list[AlertInput]]) -> HttpResponse:
    """The webhook's answer, counted by status for /metrics (an unexpected error counts as 500)."""
    try:
        response = _webhook(request, source, parse)
    except Exception:
        WEBHOOK_REQUESTS.labels(source=source, status="500").inc()
        raise
    WEBHOOK_REQUESTS.labels(source=source, status=str(response.status_code)).inc()
    return response


@csrf_exempt  # Machine-to-machine: authenticated by bearer token, not by session cookie.
@login_not_required
def alertmanager(request: HttpRequest) -> HttpResponse:
    return _counted(request, Source.ALERTMANAGER, parse_alertmanager)


@csrf_exempt  # Machine-to-machine: authenticated by bearer token, not by session cookie.
@login_not_required
def grafana(request: HttpRequest) -> HttpResponse:
    return _counted(request, Source.GRAFANA, parse_grafana)


# --- Pages --------------------------------------------------------------------------------------


BOARD = "detection/board.html"


@require_GET
@vary_on_headers("HX-Request")
def board(request: HtmxHttpRequest) -> HttpResponse:
    """Services, recent signals and rule states; the page re-fetches its #board partial every 5 s."""
    if not request.user.has_perm("incidents.view_incident"):
        raise PermissionDenied("The status board needs a role (viewer or above).")
    # What services answered can be anything an edited URL reaches: leads and above only.
    show_replies = request.user.has_perm("detection.view_health_reply")
    board = selectors.board()
    # The top bar's liveness is the board's own reading (the context processor would read it again).
    context = {"board": board, "show_replies": show_replies, "liveness": board.liveness}
    return render(request, f"{BOARD}#board" if request.htmx else BOARD, context)


@require_POST
def status_snapshot(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """From the incident page: ask for a CDB `/status` snapshot now (a worker takes it)."""
    incident = incident_get_for_user(request.user, pk, perm="incidents.act_on_incident")
    error = None
    try:
        snapshots.status_snapshot_request(incident=incident, actor=request.user)
    except ActionRefused as exc:
        error = str(exc)
    if request.htmx:
        if error:
            response = render(request, "components/flash.html", {"error": error}, status=422)
            return reswap(retarget(response, "#flash"), "innerHTML")
        return render(request, "detection/status_panel.html", {"ctx": status_context(incident, request.user)})
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Status snapshot asked for: it appears on the timeline once taken.")
    return redirect("incidents:detail", incident.pk)
