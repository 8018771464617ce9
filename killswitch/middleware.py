"""Remember who is making the request, so permission changes made in Django admin name their actor."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

current_actor: ContextVar[Any] = ContextVar("current_actor", default=None)
current_ip: ContextVar[str | None] = ContextVar("current_ip", default=None)


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; behind a proxy the proxy must set it (e.g. gunicorn --forwarded-allow-ips)."""
    return request.META.get("REMOTE_ADDR") or None


def audit_actor(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        actor = current_actor.set(getattr(request, "user", None))
        ip = current_ip.set(client_ip(request))
        try:
            return get_response(request)
        finally:
            current_actor.reset(actor)
            current_ip.reset(ip)

    return middleware
