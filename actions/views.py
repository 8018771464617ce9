"""Action item pages: my items, all items, and the add / edit / status forms the panels post to.

Every form works as htmx (answers with the panel or the row) and as a plain POST (redirects to the
checked `next` URL, or shows the form again with its errors)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from actions import forms, selectors, services
from actions.models import ACTIVE_STATUSES
from console.http import HtmxHttpRequest
from incidents.selectors import incident_get_for_user

CHANGED = "action-items-changed"
PANEL = "actions/panel.html#action-items"
ROW = "actions/item_row.html"
FORM_PAGE = "actions/item_form.html"


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _next(request: HtmxHttpRequest, default: str) -> str:
    """The `next` URL when it points into this site (never elsewhere), else `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@require_GET
def mine(request: HtmxHttpRequest) -> HttpResponse:
    items = selectors.action_items_of(request.user)
    today = timezone.localdate()
    return render(
        request,
        "actions/mine.html",
        {
            "items": items,
            "today": today,
            "overdue": sum(1 for i in items if i.overdue_on(today)),
            "next": reverse("actions:mine"),
        },
    )


@require_GET
@vary_on_headers("HX-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    if not request.user.has_perm(selectors.VIEW):
        raise PermissionDenied("Reading action items needs a role.")
    form = forms.FilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    today = timezone.localdate()
    qs = selectors.action_items_visible_to(request.user)
    status = filters.get("status") or "active"
    if status == "active":
        qs = qs.filter(status__in=ACTIVE_STATUSES)
    elif status != "all":
        qs = qs.filter(status=status)
    if filters.get("owner"):
        qs = qs.filter(owner=filters["owner"])
    if filters.get("overdue"):
        qs = qs.filter(status__in=ACTIVE_STATUSES, due__lt=today)
    items = list(qs.order_by("due", "pk")[:500])
    context = {
        "form": form,
        "items": items,
        "today": today,
        "next": request.get_full_path(),
        "overdue": sum(1 for i in items if i.overdue_on(today)),
    }
    return render(request, "actions/index.html#results" if request.htmx else "actions/index.html", context)


def _panel(request: HtmxHttpRequest, incident: Any, origin: str, nxt: str, **extra: Any) -> dict[str, Any]:
    return {
        "incident": incident,
        "items": selectors.action_items_for_incident(incident),
        "origin": origin,
        "next": nxt,
        **extra,
    }


@require_POST
def create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    incident = incident_get_for_user(request.user, pk)
    if not request.user.has_perm(selectors.ADD):
        raise PermissionDenied("Adding action items needs the responder role.")
    nxt = _next(request, reverse("incidents:detail", args=[incident.pk]))
    form = forms.CreateForm(request.POST)
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.action_item_create(
                incident=incident,
                actor=_user(request),
                title=data["title"],
                owner=data["owner"],
                due=data["due"],
                tracker_url=data["tracker_url"],
                origin=data["origin"],
            )
        except services.ActionItemError as exc:
            error = str(exc)
    origin = form.cleaned_data.get("origin") or request.POST.get("origin") or "incident"
    ok = form.is_valid() and not error
    if request.htmx:
        extra = {"added": True} if ok else {"action_form": form, "action_error": error}
        response = render(
            request, PANEL, _panel(request, incident, origin, nxt, **extra), status=200 if ok else 422
        )
        return trigger_client_event(response, CHANGED) if ok else response
    if ok:
        messages.success(request, "Action item added.")
        return HttpResponseRedirect(nxt)
    return render(
        request,
        FORM_PAGE,
        {"form": form, "error": error, "incident": incident, "next": nxt, "origin": origin, "creating": True},
        status=422,
    )


@require_http_methods(["GET", "POST"])
def edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    item = selectors.action_item_get_for_user(request.user, pk)
    if not selectors.can_edit(request.user, item):
        raise PermissionDenied("Editing action items needs the responder role.")
    nxt = _next(request, reverse("actions:mine"))
    initial = {"title": item.title, "owner": item.owner, "due": item.due, "tracker_url": item.tracker_url}
    form = forms.ActionItemForm(request.POST or None, initial=initial)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            services.action_item_update(item=item, actor=_user(request), **form.cleaned_data)
        except services.ActionItemError as exc:
            error = str(exc)
        else:
            messages.success(request, "Action item saved.")
            return HttpResponseRedirect(nxt)
    status = 422 if request.method == "POST" else 200
    return render(
        request,
        FORM_PAGE,
        {"form": form, "error": error, "item": item, "incident": item.incident, "next": nxt},
        status=status,
    )


@require_POST
def status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    item = selectors.action_item_get_for_user(request.user, pk)
    selectors.require_status_right(request.user, item)
    form = forms.StatusForm(request.POST)
    nxt = _next(request, reverse("actions:mine"))
    if not form.is_valid():
        if request.htmx:
            return HttpResponse("Unknown status.", status=422)
        messages.error(request, "Unknown status.")
        return HttpResponseRedirect(nxt)
    item = services.action_item_set_status(
        item=item, actor=_user(request), status=form.cleaned_data["status"]
    )
    if request.htmx:
        context = {
            "item": item,
            "today": timezone.localdate(),
            "next": nxt,
            "show_incident": request.POST.get("show_incident") == "1",
        }
        return trigger_client_event(render(request, ROW, context), CHANGED)
    messages.success(request, f"Action item {item.get_status_display().lower()}.")
    return HttpResponseRedirect(nxt)
