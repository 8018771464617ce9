"""The console without its database: a plain 503 for every page, except the few an app registered as
working without it (the kill switch's halt). Sessions, logins and permissions live in the database,
so this runs before them and an offline view answers without any of them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve, reverse

log = logging.getLogger(__name__)
RETRY_AFTER = "30"


@dataclass(frozen=True)
class OfflineView:
    view: Callable[..., HttpResponse]
    label: str = ""  # named in the 503 page when set (a page without URL arguments)


_OFFLINE: dict[str, OfflineView] = {}


def register_offline_view(url_name: str, view: Callable[..., HttpResponse], *, label: str = "") -> None:
    """Serve `view` for the URL named `url_name` (same arguments) while the database is unreachable.
    It must not touch the database, nor request.user or request.session: there are none."""
    _OFFLINE[url_name] = OfflineView(view, label)


def database_unavailable_response() -> HttpResponse:
    pages = [f"{o.label}: {reverse(name)}" for name, o in _OFFLINE.items() if o.label]
    text = "The console's database is unavailable, so this page is too. It is back when the database is."
    if pages:
        text += " Working without it: " + "; ".join(pages) + "."
    response = HttpResponse(text + "\n", status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = RETRY_AFTER
    return response


def database_reachable() -> bool:
    """Connected, or able to connect. A persistent connection is checked the way Django checks it
    before a request's first query anyway (CONN_HEALTH_CHECKS), so this costs no extra round trip."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except DatabaseError as exc:
        log.error("The database is unreachable: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
        return False
    return True


class DatabaseUnavailableMiddleware:
    """Before the session middleware: if the database cannot be reached, answer from a registered
    offline view or with a plain 503. A view that loses the database midway answers 503 too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if database_reachable():
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return database_unavailable_response()
        offline = _OFFLINE.get(match.view_name)
        if offline is None:
            return database_unavailable_response()
        return offline.view(request, *match.args, **match.kwargs)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # Connection lost, server gone, or a lock not granted in time: try again later, not a 500.
        if isinstance(exception, OperationalError | InterfaceError):
            log.error("Database error during %s: %s", request.path, exception)
            return database_unavailable_response()
        return None
