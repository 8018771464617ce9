from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from console import metrics as console_metrics
from console import otp, reauth
from console.forms import CodeForm, EnrolForm, RemoveForm
from console.selectors import has_role

# Between the password and the code: who passed the password step, when, and where they were going.
PENDING_KEY = "console_login_pending"
PENDING_SECONDS = 300

log = logging.getLogger(__name__)


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The top bar's data-age indicator, re-fetched by every page every 5 s (one query)."""
    if not has_role(request.user):
        raise PermissionDenied("The console's status needs a role.")
    return render(request, "console/liveness.html")


# --- Logging in -----------------------------------------------------------------------------------


class ConsoleLoginView(LoginView):
    """Username and password (django-axes counts every failure); then, for a person with a TOTP
    device, the code on its own page. Logging in counts as entering the password in this session."""

    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if otp.device_for(user) is None:
            response = super().form_valid(form)
            reauth.mark(self.request, code=False)
            return response
        # The password was right; the person is not logged in until the code is too.
        self.request.session[PENDING_KEY] = {
            "user": user.pk,
            "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[1]),
            "at": time.time(),
            "next": self.get_success_url(),
        }
        return redirect("login_code")


@login_not_required
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    """The second step: the code from the person's authenticator app, within 5 minutes of the password."""
    pending = request.session.get(PENDING_KEY)
    if not pending or not 0 <= time.time() - pending.get("at", 0) <= PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        if request.method == "POST":
            messages.error(request, "That took too long: log in again.")
        return redirect("login")
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    device = otp.device_for(user)
    if user is None or device is None:
        request.session.pop(PENDING_KEY, None)
        return redirect("login")
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        if otp.verify(device, form.cleaned_data["code"]):
            request.session.pop(PENDING_KEY, None)
            auth_login(request, user, backend=pending["backend"])
            reauth.mark(request, code=True)
            return redirect(pending["next"])
        # A wrong code counts toward the lockout of the account and the address, like a password.
        credentials = {"username": user.get_username()}
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        form.add_error("code", "That code is not right (or was already used).")
    return render(request, "registration/login_code.html", {"form": form}, status=422 if form.errors else 200)


def lockout(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """django-axes' answer to a locked-out attempt (AXES_LOCKOUT_CALLABLE). The login steps show
    the login page with the reason; other password checks (approval) have shown it themselves."""
    match = request.resolver_match
    if original_response is not None and (match is None or match.url_name not in ("login", "login_code")):
        return original_response
    request.session.pop(PENDING_KEY, None)
    context = {
        "form": AuthenticationForm(request),
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "locked_out": True,
        "lockout_minutes": settings.LOGIN_LOCKOUT_MINUTES,
    }
    return render(request, "registration/login.html", context, status=429)


@login_not_required
def admin_login(request: HttpRequest) -> HttpResponse:
    """Django admin signs in through the console's login (one lockout, one second factor)."""
    if request.user.is_authenticated:
        raise PermissionDenied("Django admin needs a staff account; yours is not one.")
    return redirect_to_login(request.GET.get("next") or reverse("admin:index"), reverse("login"))


# --- The second factor ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    """Enrol a TOTP device: scan the QR code (or type the key), then prove it with a code and the
    password. Once enrolled, logging in and approving a resume ask for a code."""
    user: Any = request.user
    device = otp.device_for(user)
    if device is not None:
        return render(request, "console/second_factor.html", {"device": device, "form": RemoveForm()})
    pending = otp.pending_device(user)
    form = EnrolForm(request.POST if request.method == "POST" else None)
    status = 200
    if form.is_valid():
        password = form.cleaned_data["password"]
        verdict = reauth.check_password(request, password=password, what="nothing changed")
        if not verdict.ok:
            form.add_error("password", verdict.message)
        elif not otp.verify(pending, form.cleaned_data["code"]):
            form.add_error("code", "That code is not right: check the app shows the console's entry.")
        else:
            pending.confirmed = True
            pending.save(update_fields=["confirmed"])
            reauth.mark(request, code=True)
            messages.success(request, "Second factor enrolled: logging in and approving now ask for a code.")
            return redirect(request.GET.get("next") or "console:second_factor")
    if form.errors:
        status = 422
    context = {
        "form": form,
        "qr": otp.qr_data_uri(pending),
        "key": otp.key_text(pending),
        "required": otp.required_for(user),
    }
    return render(request, "console/second_factor.html", context, status=status)


@require_POST
def second_factor_remove(request: HttpRequest) -> HttpResponse:
    """Remove one's own device: the password and a current code, so a borrowed session cannot."""
    device = otp.device_for(request.user)
    form = RemoveForm(request.POST)
    if device is None or not form.is_valid():
        messages.error(request, "Enter your password and a current code to remove the second factor.")
        return redirect("console:second_factor")
    data = form.cleaned_data
    verdict = reauth.check_password(
        request, password=data["password"], code=data["code"], what="nothing changed"
    )
    if not verdict.ok:
        messages.error(request, verdict.message)
        return redirect("console:second_factor")
    device.delete()
    messages.success(request, "Second factor removed: logging in asks for the password only.")
    return redirect("console:second_factor")


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
