"""The floor for bench/ingest.py: a bare Django view that inserts one row per request.

It runs inside the console's own Django project (config.settings: same middleware stack, same database
settings, persistent connections and health checks) with only the URLconf swapped for one that mounts
this view, so the comparison with the webhook is the webhook's own work against the least any
database-writing Django request costs on the same server. Served by gunicorn as
`bench.floor:application()` (an app factory: importing this module changes nothing).

The view reads the body (the same one-alert Alertmanager payload the webhook gets), inserts one row
with its size into `bench_floor` in autocommit mode (committed before the answer, as the webhook's
alerts are) and answers a small JSON object. No parsing, no token check, no ORM: the floor is the
request/response cycle plus one committed INSERT, nothing else.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

FLOOR_TABLE = "bench_floor"
FLOOR_PATH = "bench/floor/"
FLOOR_DDL = (
    f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} ("
    "id bigserial PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now(), nbytes integer NOT NULL)"
)
FLOOR_URLCONF = "bench.floor"


@csrf_exempt  # the webhook is exempt too (bearer token, no cookie)
@login_not_required  # the webhook is too: LoginRequiredMiddleware lets it through
def floor(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return JsonResponse({"error": "Use POST."}, status=405)
    body = request.body
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FLOOR_TABLE} (nbytes) VALUES (%s)", [len(body)])  # noqa: S608
    return JsonResponse({"received": 1})


# This module is also the floor server's URLconf (ROOT_URLCONF = "bench.floor").
urlpatterns = [path(FLOOR_PATH, floor, name="floor")]


def application() -> Any:
    """gunicorn app factory: config.settings with ROOT_URLCONF pointing here, nothing else changed."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = FLOOR_URLCONF
    return get_wsgi_application()
