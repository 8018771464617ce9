"""On-call pages: who holds each duty now and next, the rotations and overrides (leads edit them),
calendar feeds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.http import HtmxHttpRequest
from oncall import forms, ics, selectors, services
from oncall.models import CalendarFeed, Duty, Override, Rotation

EDIT = "oncall.change_rotation"
VIEW = "oncall.view_rotation"


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _need(request: HtmxHttpRequest, perm: str, what: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(what)


def candidates() -> Any:
    """People who may be on call: active, holding a role."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__permissions__codename="view_incident")
        .distinct()
        .order_by("username")
    )


@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    _need(request, VIEW, "On-call needs a role.")
    now = timezone.now()
    w = selectors.window(now, now + timedelta(days=selectors.COVERAGE_DAYS))
    users = get_user_model().objects.in_bulk(
        {s.user_id for segs in w.segments.values() for s in segs if s.user_id}
    )
    rotations = []
    for plan in w.plans:
        upcoming = [(s, users.get(s.user_id)) for s in w.segments[plan.id]]
        rotations.append((Rotation.objects.get(pk=plan.id), plan, upcoming))
    context = {
        "duties": selectors.now_and_next(now),
        "gaps": selectors.coverage_gaps(start=now) if request.user.has_perm(EDIT) else [],
        "rotations": rotations,
        "disabled": Rotation.objects.filter(enabled=False),
        "overrides": Override.objects.filter(ends_at__gt=now).select_related("rotation", "user", "replaces"),
        "can_edit": request.user.has_perm(EDIT),
        "now": now,
    }
    return render(request, "oncall/index.html", context)


@require_http_methods(["GET", "POST"])
def rotation_edit(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    _need(request, EDIT, "Editing rotations needs the lead role.")
    rotation = get_object_or_404(Rotation, pk=pk) if pk else None
    initial = {}
    if rotation is not None:
        initial = {
            "name": rotation.name,
            "duty": rotation.duty,
            "time_zone": rotation.time_zone,
            "effective_from": rotation.effective_from,
            "handoff_time": rotation.handoff_time,
            "handoff_weekday": rotation.handoff_weekday,
            "shift_hours": rotation.shift_hours,
            "enabled": rotation.enabled,
            "members": "\n".join(m.user.username for m in rotation.members.select_related("user")),
        }
    else:
        initial = {
            "time_zone": "UTC",
            "shift_hours": 168,
            "effective_from": timezone.localdate(),
            "enabled": True,
        }
    form = forms.RotationForm(request.POST or None, instance=rotation, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.rotation_save(rotation=rotation, **form.cleaned_data)
        except services.OnCallRefused as exc:
            form.add_error("members", str(exc))
        else:
            messages.success(request, f"Rotation {saved.name} saved.")
            return redirect("oncall:index")
    return render(
        request,
        "oncall/rotation_edit.html",
        {"form": form, "rotation": rotation},
        status=422 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
def override_new(request: HtmxHttpRequest) -> HttpResponse:
    _need(request, "oncall.add_override", "Adding overrides needs the lead role.")
    form = forms.OverrideForm(request.POST or None, candidates=candidates(), initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        try:
            services.override_create(actor=_user(request), **form.cleaned_data)
        except services.OnCallRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Override saved.")
            return redirect("oncall:index")
    return render(request, "oncall/override_new.html", {"form": form}, status=422 if form.errors else 200)


@require_POST
def override_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    _need(request, "oncall.delete_override", "Removing overrides needs the lead role.")
    services.override_delete(override=get_object_or_404(Override, pk=pk))
    messages.success(request, "Override removed.")
    return redirect("oncall:index")


@require_http_methods(["GET", "POST"])
def feeds(request: HtmxHttpRequest) -> HttpResponse:
    """My calendar feeds: the link of a new one is shown once."""
    _need(request, VIEW, "On-call needs a role.")
    form = forms.FeedForm(request.POST or None)
    new_url = ""
    if request.method == "POST" and form.is_valid():
        _, token = services.calendar_feed_create(user=_user(request), rotation=form.cleaned_data["rotation"])
        new_url = request.build_absolute_uri(reverse("oncall:ics", args=[token]))
    return render(
        request,
        "oncall/feeds.html",
        {"form": form, "feeds": selectors.feeds_of(request.user), "new_url": new_url},
    )


@require_POST
def feed_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    feed = CalendarFeed.objects.filter(pk=pk, user=_user(request)).first()
    if feed is None:
        raise Http404("No such feed of yours.")
    services.calendar_feed_revoke(feed=feed, actor=request.user)
    messages.success(request, "Feed revoked: its link no longer works.")
    return redirect("oncall:feeds")


@require_GET
@login_not_required  # Calendar programs cannot log in: the secret token in the URL is the credential.
def ics_feed(request: HtmxHttpRequest, token: str) -> HttpResponse:
    feed = services.calendar_feed_for_token(token)
    if feed is None or not feed.user.is_active:
        raise Http404("No such calendar.")
    body = ics.feed(user=None if feed.rotation_id else feed.user, rotation_id=feed.rotation_id)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="on-call.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response


DUTY_LABELS = dict(Duty.choices)
