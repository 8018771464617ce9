"""Kill-switch pages: halt in one confirmed step, resume with four eyes, the audit for leads."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console import otp, reauth
from incidents.models import OPEN_STATUSES
from incidents.selectors import incidents_visible_to
from killswitch import forms, offline, selectors, services
from killswitch.backends import BackendError, InvalidInput
from killswitch.export import csv_rows
from killswitch.middleware import client_ip
from killswitch.targets import Target, all_targets


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _target(name: str) -> Target:
    try:
        return all_targets()[name]
    except KeyError:
        raise Http404("No such kill-switch target.") from None


def _open_incidents(request: HttpRequest, tgt: Target) -> Any:
    """The open incidents this target's controls may name: real ones on production, drills elsewhere."""
    return (
        incidents_visible_to(request.user)
        .filter(status__in=OPEN_STATUSES, is_drill=not tgt.production)
        .order_by("severity", "-detected_at")
    )


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("killswitch.view_targetstate"):
        raise PermissionDenied("Viewing the kill switch needs a role.")
    live = [(t, t.backend().read()) for t in all_targets().values()]
    context = {
        "live": live,
        "pending": list(selectors.resume_requests(pending_only=True)),
        "recent": list(selectors.resume_requests()[:10]),
        # Re-authentication is per session: the approve form asks for what this session has not proved.
        "reauth": not reauth.is_fresh(request),
        "needs_code": otp.device_for(request.user) is not None,
        "must_enrol": otp.required_for(request.user) and otp.device_for(request.user) is None,
        "reauth_minutes": reauth.window_minutes(),
        "now": timezone.now(),
    }
    return render(request, "killswitch/index.html", context)


@require_GET
def banner(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("killswitch.view_targetstate"):
        raise PermissionDenied("Viewing the kill switch needs a role.")
    return render(request, "killswitch/banner.html")


@require_http_methods(["GET", "POST"])
def activate(request: HttpRequest, target: str) -> HttpResponse:
    """GET the form; POST it to see the confirmation; POST again with confirm=yes to halt."""
    if not request.user.has_perm("killswitch.activate_killswitch"):
        raise PermissionDenied("Halting trading needs the responder role.")
    tgt = _target(target)
    initial = {"reason": request.GET.get("reason", "manual"), "incident": request.GET.get("incident")}
    form = forms.ActivateForm(request.POST or None, incidents=_open_incidents(request, tgt), initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        if request.POST.get("confirm") != "yes":
            return render(request, "killswitch/activate_confirm.html", {"form": form, "target": tgt})
        try:
            outcome = services.killswitch_activate(
                target=tgt.name,
                actor=_actor(request),
                reason=form.cleaned_data["reason"],
                message=form.cleaned_data["message"],
                incident=form.cleaned_data["incident"],
                ip=client_ip(request),
            )
        except (InvalidInput, services.KillSwitchRefused) as exc:
            form.add_error(None, str(exc))
        except BackendError as exc:
            form.add_error(None, f"{exc} Nothing was recorded as done; the state is shown as read now.")
            status = 502
        else:
            if not outcome.recorded:
                # Halted, but the database did not take the record: say so here, without a redirect to
                # pages that need the database.
                return offline.render_plain(
                    request,
                    "killswitch/activate_done.html",
                    {"outcome": outcome, "target": tgt, "offline": False},
                )
            (messages.success if outcome.changed else messages.info)(request, outcome.message)
            incident = form.cleaned_data["incident"]
            return redirect("incidents:detail", pk=incident.pk) if incident else redirect("killswitch:index")
    if form.errors and status == 200:
        status = 422
    return render(
        request,
        "killswitch/activate.html",
        {"form": form, "target": tgt, "state": tgt.backend().read()},
        status=status,
    )


@require_http_methods(["GET", "POST"])
def request_resume(request: HttpRequest, target: str) -> HttpResponse:
    if not request.user.has_perm("killswitch.request_resume"):
        raise PermissionDenied("Requesting a resume needs the lead role.")
    tgt = _target(target)
    initial = {"incident": request.GET.get("incident")}
    form = forms.ResumeRequestForm(
        request.POST or None, incidents=_open_incidents(request, tgt), initial=initial
    )
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            resume = services.killswitch_request_resume(
                target=tgt.name,
                actor=_actor(request),
                justification=form.cleaned_data["justification"],
                incident=form.cleaned_data["incident"],
                ip=client_ip(request),
            )
        except (InvalidInput, services.KillSwitchRefused, BackendError) as exc:
            form.add_error(None, str(exc))
            status = 409
        else:
            messages.success(request, f"Resume request #{resume.pk} filed; another lead must approve it.")
            return redirect("killswitch:index")
    if form.errors and status == 200:
        status = 422
    return render(request, "killswitch/request_resume.html", {"form": form, "target": tgt}, status=status)


@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve with proof that the person at this session's keyboard is the approver: the password
    entered in this session within KILLSWITCH_REAUTH_SECONDS (a login counts), or re-entered now,
    with the TOTP code too for a person who has a device. Wrong passwords count toward the lockout."""
    if not request.user.has_perm("killswitch.approve_resume"):
        raise PermissionDenied("Approving a resume needs the approve permission.")
    user = _actor(request)
    if otp.required_for(user) and otp.device_for(user) is None:
        messages.error(request, "Approving a resume needs a second factor: enrol one first.")
        return redirect(f"{reverse('console:second_factor')}?next={reverse('killswitch:index')}")
    form = forms.ApproveForm(request.POST)
    form.is_valid()
    password = form.cleaned_data.get("password") or ""
    if password:
        verdict = reauth.check_password(
            request, password=password, code=form.cleaned_data.get("code") or "", what="nothing was approved"
        )
        if not verdict.ok:
            messages.error(request, verdict.message)
            return redirect("killswitch:index")
    elif not reauth.is_fresh(request):
        messages.error(
            request,
            f"Re-enter your password to approve: it was not entered in this session in the last "
            f"{reauth.window_minutes()} minutes. Nothing was approved.",
        )
        return redirect("killswitch:index")
    try:
        outcome = services.killswitch_approve_resume(
            request_id=pk, actor=user, reauthenticated=True, ip=client_ip(request)
        )
    except (services.KillSwitchRefused, services.ResumeFailed, BackendError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, outcome.message)
    return redirect("killswitch:index")


@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    form = forms.RejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("killswitch:index")
    try:
        services.killswitch_reject_resume(
            request_id=pk, actor=_actor(request), note=form.cleaned_data["note"], ip=client_ip(request)
        )
    except services.KillSwitchRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Resume request #{pk} rejected.")
    return redirect("killswitch:index")


@require_GET
def audit(request: HttpRequest) -> HttpResponseBase:
    form = forms.AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    records = selectors.audit_filtered(request.user, filters)
    if request.GET.get("format") == "csv":
        if not request.user.has_perm("killswitch.export_auditrecord"):
            raise PermissionDenied("Exporting the audit needs the export permission.")
        response = StreamingHttpResponse(csv_rows(records.iterator()), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="killswitch-audit.csv"'
        return response
    page = Paginator(records, 50).get_page(request.GET.get("page"))
    return render(
        request, "killswitch/audit.html", {"form": form, "page": page, "query": request.GET.urlencode()}
    )
