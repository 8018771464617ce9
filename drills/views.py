"""Drill pages: the programme's table, the calendar (month and week), each drill (move, cancel,
start), its review, and the drills calendar feed."""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from console.http import HtmxHttpRequest
from drills import calendar, forms, measures, selectors, services
from drills.models import Drill

VIEW = "drills.view_drill"
SCHEDULE = "drills.add_drill"
CHANGE = "drills.change_drill"
RUN = "drills.run_drill"


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _need(request: HtmxHttpRequest, perm: str, what: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(what)


def _drill(request: HtmxHttpRequest, pk: int) -> Drill:
    if not request.user.has_perm(VIEW):
        raise Http404("No such drill.")  # people without a role learn nothing about drills
    return selectors.drill_get(pk)


@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    """The playbook's drill table, kept by the console: frequency, last run, next scheduled, overdue."""
    _need(request, VIEW, "Drills need a role.")
    return render(request, "drills/index.html", {"rows": selectors.programme()})


@require_GET
@vary_on_headers("HX-Request")
def calendar_page(request: HtmxHttpRequest) -> HttpResponse:
    """Month or week, with every calendar source's events; htmx swaps only the calendar."""
    _need(request, VIEW, "The calendar needs a role.")
    view = "week" if request.GET.get("view") == "week" else "month"
    try:
        anchor = date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        anchor = timezone.localdate()
    context = calendar.grid(view=view, anchor=anchor, user=request.user)
    template = "drills/calendar.html#calendar" if request.htmx else "drills/calendar.html"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
def drill_new(request: HtmxHttpRequest) -> HttpResponse:
    _need(request, SCHEDULE, "Scheduling drills needs the lead role.")
    initial = {"scheduled_for": request.GET.get("date", "") and f"{request.GET['date']}T10:00"}
    form = forms.DrillForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            drill = services.drill_schedule(
                drill_type=form.cleaned_data["drill_type"],
                scheduled_for=form.cleaned_data["scheduled_for"],
                actor=_user(request),
            )
        except services.DrillRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"{drill.drill_type} scheduled for {drill.scheduled_for:%Y-%m-%d %H:%M}."
            )
            return redirect(_calendar_at(drill))
    return render(request, "drills/drill_new.html", {"form": form}, status=422 if form.errors else 200)


def _calendar_at(drill: Drill) -> str:
    day = timezone.localdate(drill.scheduled_for)
    return f"{reverse('drills:calendar')}?date={day.isoformat()}"


@require_GET
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    drill = _drill(request, pk)
    context = {
        "drill": drill,
        "move_form": forms.MoveForm(initial={"scheduled_for": timezone.localtime(drill.scheduled_for)}),
        "cancel_form": forms.CancelForm(),
        "participants": list(drill.drill_type.participants.order_by("username")),
        "rows": measures.rows(drill) if drill.incident_id else [],
    }
    return render(request, "drills/drill_detail.html", context)


@require_POST
def move(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """From the form or the calendar's drag and drop (which posts the same field, with htmx's CSRF
    header, and wants 204 or a message)."""
    drill = _drill(request, pk)
    _need(request, CHANGE, "Moving drills needs the lead role.")
    form = forms.MoveForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            drill = services.drill_move(
                drill=drill, scheduled_for=form.cleaned_data["scheduled_for"], actor=_user(request)
            )
        except services.DrillRefused as exc:
            error = str(exc)
    else:
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    if request.headers.get("X-Drill-Drag"):
        return HttpResponse(error, status=409) if error else HttpResponse(status=204)
    if error:
        messages.error(request, error)
        return redirect("drills:detail", pk=drill.pk)
    messages.success(
        request,
        f"Moved to {timezone.localtime(drill.scheduled_for):%Y-%m-%d %H:%M}; the series is unchanged.",
    )
    return redirect(_calendar_at(drill))


@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    drill = _drill(request, pk)
    _need(request, CHANGE, "Cancelling drills needs the lead role.")
    form = forms.CancelForm(request.POST)
    form.is_valid()
    try:
        services.drill_cancel(drill=drill, actor=_user(request), reason=form.cleaned_data.get("reason", ""))
    except services.DrillRefused as exc:
        messages.error(request, str(exc))
        return redirect("drills:detail", pk=drill.pk)
    messages.success(request, "Drill cancelled; the rest of its series is unchanged.")
    return redirect(_calendar_at(drill))


@require_POST
def start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    drill = _drill(request, pk)
    _need(request, RUN, "Running drills needs the responder role.")
    try:
        drill = services.drill_start(drill=drill, actor=_user(request))
    except services.DrillRefused as exc:
        messages.error(request, str(exc))
        return redirect("drills:detail", pk=drill.pk)
    assert drill.incident_id is not None
    messages.success(request, "Drill started: respond to its incident as you would for real.")
    return redirect("incidents:detail", pk=drill.incident_id)


@require_http_methods(["GET", "POST"])
def review(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Each measured time against its target, findings, action items, proposed playbook changes."""
    drill = _drill(request, pk)
    can_review = services.can_review(_user(request), drill)
    form = forms.ReviewForm(
        request.POST or None,
        initial={
            "findings": drill.findings,
            "playbook_proposal": drill.playbook_proposal,
            "playbook_proposal_url": drill.playbook_proposal_url,
        },
    )
    if request.method == "POST":
        if not can_review:
            raise PermissionDenied("Reviewing a drill needs the lead role or owning its type.")
        if form.is_valid():
            try:
                services.drill_review(drill=drill, actor=_user(request), **form.cleaned_data)
            except services.DrillRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Review saved.")
                return redirect("drills:review", pk=drill.pk)
    context = {
        "drill": drill,
        "rows": measures.rows(drill),
        "form": form,
        "can_review": can_review,
        "actions": services.action_items_panel(drill),
    }
    return render(request, "drills/drill_review.html", context, status=422 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def feed_link(request: HtmxHttpRequest) -> HttpResponse:
    """A secret link to my drills as a calendar feed, on the console's calendar-feed tokens (the same
    tokens as my on-call feed; revoking one on the on-call feeds page ends both links)."""
    _need(request, VIEW, "Drills need a role.")
    url = ""
    if request.method == "POST":
        from oncall import services as oncall

        _, token = oncall.calendar_feed_create(user=_user(request))
        url = request.build_absolute_uri(reverse("drills:ics", args=[token]))
    return render(request, "drills/feed_link.html", {"new_url": url})


@require_GET
@login_not_required  # Calendar programs cannot log in: the secret token in the URL is the credential.
def ics_feed(request: HtmxHttpRequest, token: str) -> HttpResponse:
    from oncall import services as oncall

    feed = oncall.calendar_feed_for_token(token)
    if feed is None or feed.rotation_id is not None or not feed.user.is_active:
        raise Http404("No such calendar.")
    response = HttpResponse(calendar.feed(user=feed.user), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="drills.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response
