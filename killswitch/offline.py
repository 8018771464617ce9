"""Halting from the web while the database is unreachable.

Sessions, users and permissions live in PostgreSQL, so without it the console cannot tell who is
asking. At login, a person who holds the halt permission also gets a signed, expiring "may halt"
cookie (HMAC with SECRET_KEY; user id and name; valid for KILLSWITCH_OFFLINE_HALT_SECONDS). Only
the offline halt pages read it, and only while the database is unreachable
(console.middleware.DatabaseUnavailableMiddleware sends them there); with the database up nothing
reads it.

Its limits: without the database nothing can be checked beyond the signature and the age, so a
permission revoked, an account deactivated or a logout in another browser after the login do not
take effect on it until it expires; logging out deletes it from that browser only; rotating
SECRET_KEY invalidates every one. Halting is the safe direction, each such halt is kept in the spool
and recorded with the cookie's name (marked as made without the database) once the database is back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from killswitch.backends import BackendError, InvalidInput
from killswitch.targets import all_targets

COOKIE = "cdb_may_halt"
SALT = "killswitch.offline.may-halt"
ORIGIN = "web without the database (signed halt cookie)"


@dataclass(frozen=True)
class Holder:
    user_id: int
    username: str


def issue(user: Any) -> str:
    return signing.dumps({"id": user.pk, "name": user.get_username()}, salt=SALT)


def holder(request: HttpRequest) -> Holder | None:
    """The person the request's cookie vouches for, if its signature holds and it has not expired."""
    value = request.COOKIES.get(COOKIE)
    if not value or settings.KILLSWITCH_OFFLINE_HALT_SECONDS <= 0:
        return None
    try:
        data = signing.loads(value, salt=SALT, max_age=settings.KILLSWITCH_OFFLINE_HALT_SECONDS)
        return Holder(int(data["id"]), str(data["name"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


# --- Issued at login, deleted at logout -------------------------------------------------------------


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    may = settings.KILLSWITCH_OFFLINE_HALT_SECONDS > 0 and user.has_perm("killswitch.activate_killswitch")
    request._may_halt = issue(user) if may else ""  # type: ignore[attr-defined]


def _on_logout(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    if request is not None:
        request._may_halt = ""  # type: ignore[attr-defined]


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="killswitch-may-halt-login")
    user_logged_out.connect(_on_logout, dispatch_uid="killswitch-may-halt-logout")


def may_halt_cookie(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Set or delete the cookie on the response of a login or logout (nothing else touches it)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        value = getattr(request, "_may_halt", None)
        if value:
            response.set_cookie(
                COOKIE,
                value,
                max_age=settings.KILLSWITCH_OFFLINE_HALT_SECONDS,
                path=reverse("killswitch:index"),
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        elif value == "":
            # Unconditionally: the browser does not send a /killswitch/ cookie to the logout URL.
            response.delete_cookie(COOKIE, path=reverse("killswitch:index"), samesite="Lax")
        return response

    return middleware


# --- The pages, while the database is unreachable ---------------------------------------------------


def render_plain(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """Render without context processors (they read the session, the user and the banner from the
    database); the CSRF token comes from its cookie."""
    body = render_to_string(template, {"offline": True, **context, "csrf_token": get_token(request)})
    return HttpResponse(body, status=status)


@require_http_methods(["GET"])
@csrf_protect
def index(request: HttpRequest) -> HttpResponse:
    live = [(t, t.backend().read()) for t in all_targets().values()]
    return render_plain(request, "killswitch/offline.html", {"live": live, "holder": holder(request)})


@require_http_methods(["GET", "POST"])
@csrf_protect
def activate(request: HttpRequest, target: str) -> HttpResponse:
    """The halt in the same two steps as online, for the cookie's holder; no incident can be named
    (incidents are in the database), and the record waits in the spool."""
    from killswitch import forms, services

    tgt = all_targets().get(target)
    if tgt is None:
        return HttpResponse("No such kill-switch target.\n", status=404, content_type="text/plain")
    person = holder(request)
    context: dict[str, Any] = {"target": tgt, "holder": person}
    if person is None:
        return render_plain(request, "killswitch/offline_activate.html", context, status=403)
    form = forms.HaltForm(request.POST or None, initial={"reason": request.GET.get("reason", "manual")})
    context["form"] = form
    status = 200
    if request.method == "POST" and form.is_valid():
        if request.POST.get("confirm") != "yes":
            return render_plain(request, "killswitch/offline_activate.html", {**context, "confirm": True})
        try:
            outcome = services.killswitch_activate_offline(
                target=tgt.name,
                actor_name=person.username,
                actor_id=person.user_id,
                reason=form.cleaned_data["reason"],
                message=form.cleaned_data["message"],
                ip=request.META.get("REMOTE_ADDR") or None,
                origin=ORIGIN,
                why="database unavailable",
            )
        except (InvalidInput, BackendError) as exc:
            form.add_error(None, f"{exc} Nothing was halted; the state is shown as read now.")
            status = 502
        else:
            return render_plain(request, "killswitch/activate_done.html", {"outcome": outcome, "target": tgt})
    if form.errors and status == 200:
        status = 422
    context["state"] = tgt.backend().read()
    return render_plain(request, "killswitch/offline_activate.html", context, status=status)


def register() -> None:
    from console.middleware import register_offline_view

    connect()
    register_offline_view("killswitch:index", index, label="halting trading")
    register_offline_view("killswitch:activate", activate)
