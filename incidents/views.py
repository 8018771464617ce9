"""Console pages. Thin: read through selectors, write through services, render partials for htmx.

Every mutation works twice: as htmx (answers with a fragment or 204 plus an `incident-changed`
event that makes the live page refresh at once) and as a plain POST (redirect back, or the page
again with the form's errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, reswap, retarget, trigger_client_event

from console.http import HtmxHttpRequest
from incidents import forms, panels, selectors, services
from incidents.lifecycle import ActionRefused, check_transition, in_monitoring_window, offered_moves
from incidents.models import Incident, SeverityLevel, Status
from incidents.triage import QUESTIONS, describe_answers

CHANGED = "incident-changed"


DETAIL = "incidents/incident_detail.html"
BOARD_ROWS, BOARD_ALL = 50, 1000


# --- Home ---------------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
def home(request: HtmxHttpRequest) -> HttpResponse:
    form = forms.FilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    # The most urgent first; a long board costs render time at the moment it matters most.
    limit = BOARD_ALL if request.GET.get("all") else BOARD_ROWS
    board = list(selectors.board_for(request.user, filters=filters)[: limit + 1])
    closed_page = Paginator(selectors.closed_search(request.user, filters=filters), 25).get_page(
        request.GET.get("page")
    )
    context = {
        "form": form,
        "board": board[:limit],
        "board_more": len(board) > limit,
        "closed_page": closed_page,
        "counts": selectors.open_counts_by_severity(request.user),
        "now": timezone.now(),
        "can_declare": request.user.has_perm("incidents.add_incident"),
        "querystring": request.GET.urlencode(),
    }
    template = "incidents/home.html#results" if request.htmx else "incidents/home.html"
    return render(request, template, context)


# --- Declare ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def declare(request: HtmxHttpRequest) -> HttpResponse:
    if not request.user.has_perm("incidents.add_incident"):
        return _forbidden(request, "Declaring incidents needs the responder role.")
    form = forms.DeclareForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            incident = services.incident_declare(
                actor=_actor(request),
                title=form.cleaned_data["title"],
                incident_type=form.cleaned_data["incident_type"],
                severity=form.chosen_severity(),
                description=form.cleaned_data["description"],
                affected_components=forms.split_components(form.cleaned_data["affected_components"]),
                decision_answers=form.decision_answers(),
                severity_reason=form.cleaned_data["severity_reason"],
            )
        except ActionRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{incident.reference} declared as {incident.get_severity_display()}.")
            return redirect("incidents:detail", pk=incident.pk)
    status = 422 if form.errors else 200
    return render(request, "incidents/incident_declare.html", _declare_context(form), status=status)


@require_GET
def declare_suggest(request: HtmxHttpRequest) -> HttpResponse:
    """The decision tree for the answers so far (htmx fragment): the questions it still asks, and
    its suggestion once an answer decides."""
    if not request.user.has_perm("incidents.add_incident"):
        return _forbidden(request, "Declaring incidents needs the responder role.")
    form = forms.DecisionTreeForm(request.GET)
    return render(request, "incidents/incident_declare_tree.html", _declare_context(form))


def _declare_context(form: forms.DecisionTreeForm) -> dict[str, Any]:
    form.is_valid()  # an unbound form stays empty; a bound one is walked as far as its answers go
    tree = form.walk()
    levels = {level.level: level for level in SeverityLevel.objects.all()}
    suggestion = tree.suggestion
    halt = suggestion is not None and (
        suggestion.tree_halts
        or (
            levels.get(suggestion.severity) or SeverityLevel.fallback(suggestion.severity)
        ).kill_switch_default
    )
    return {
        "form": form,
        # Questions after the deciding answer: hidden (every question shows until one decides).
        "not_asked": [q for q in QUESTIONS if tree.suggestion and q not in tree.asked],
        "suggestion": suggestion,
        "suggest_halt": halt,
        "levels": levels.values(),
    }


# --- The live incident page ---------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    incident = selectors.incident_get_for_user(request.user, pk)
    return render(request, DETAIL, _detail_context(request, incident))


@require_GET
@login_not_required  # Checked below: the fast path vouches for the session, else the full check runs.
def poll(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """'Has anything changed since version v?' One query and an empty 204 when not."""
    try:
        seen = int(request.GET.get("v", ""))
    except ValueError:
        seen = -1
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    state = selectors.poll_state(session_key=key, incident_id=pk) if key else None
    if state is not None and state.version == seen:
        if state.status == Status.CLOSED:
            return HttpResponseStopPolling()
        return HttpResponse(status=204)
    # Changed, or the fast check could not vouch for the session: the full, checked path.
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    incident = selectors.incident_get_for_user(request.user, pk)
    context = _detail_context(request, incident, new_events_after=max(seen, 0), oob=True)
    return render(request, "incidents/incident_live.html", context)


@require_GET
def facts(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The pre-recovery checklist with each fact as checked now (the page refreshes it every 10 s)."""
    incident = selectors.incident_get_for_user(request.user, pk)
    context = {
        "incident": incident,
        "kind": "pre_recovery",
        "items": selectors.checklists_for(incident)["pre_recovery"],
        "can": selectors.incident_permissions(request.user, incident),
    }
    return render(request, f"{DETAIL}#checklist", context)


@require_GET
def timeline(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    incident = selectors.incident_get_for_user(request.user, pk)
    before = request.GET.get("before")
    qs = incident.events.select_related("actor").order_by("-id")
    if before and before.isdigit():
        qs = qs.filter(id__lt=int(before))
    events = list(qs[: selectors.TIMELINE_PAGE])
    return render(request, "incidents/incident_timeline.html", {"incident": incident, "events": events})


def _detail_context(
    request: HtmxHttpRequest,
    incident: Incident,
    *,
    new_events_after: int | None = None,
    oob: bool = False,
    bound: dict[str, Form] | None = None,
) -> dict[str, Any]:
    """Everything the page renders. `bound` holds a submitted form by its context name, shown with
    its errors in place of the fresh one (a plain POST that failed)."""
    perms = selectors.incident_permissions(request.user, incident)
    checklists = selectors.checklists_for(incident)
    pre_recovery_done = selectors.checklist_satisfied(checklists["pre_recovery"])
    moves, blocked = offered_moves(incident, pre_recovery_done=pre_recovery_done)
    context: dict[str, Any] = {
        "incident": incident,
        "can": perms,
        "checklists": checklists,
        "moves": moves,
        "blocked": blocked,
        "events": selectors.timeline_for(incident, after=new_events_after),
        "panels": panels.panels_for(incident, request.user, live_only=oob),
        "answers": describe_answers(incident.decision_answers) if incident.decision_answers else None,
        "now": timezone.now(),
        "oob": oob,
        "poll_ms": settings.LIVE_POLL_MS,
    }
    if not oob:
        context |= {
            "note_form": forms.NoteForm(),
            "severity_form": forms.SeverityForm(initial={"severity": incident.severity}),
            "commander_form": forms.CommanderForm(
                candidates=selectors.commander_candidates(), initial={"commander": incident.commander_id}
            ),
            "type_form": forms.TypeForm(initial={"incident_type": incident.incident_type_id}),
            "override_form": forms.TransitionForm(),
            "offer_override": _override_possible(incident, pre_recovery_done),
        } | (bound or {})
    return context


def _override_possible(incident: Incident, pre_recovery_done: bool) -> bool:
    """Whether resolving with an override is what stands between this incident and resolved: an
    incomplete pre-recovery checklist, or a monitoring window still running."""
    blocked_by_checklist = incident.level.pre_recovery_required and not pre_recovery_done
    if not blocked_by_checklist and not in_monitoring_window(incident):
        return False
    try:
        check_transition(incident, Status.RESOLVED, override_reason="(override)", pre_recovery_done=False)
    except ActionRefused:
        return False
    return True


# --- Actions ------------------------------------------------------------------------------


def _act(
    request: HtmxHttpRequest,
    pk: int,
    *,
    perm: str,
    form: Form,
    run: Callable[[Incident, dict[str, Any]], Incident],
    success: str,
    partial: str | None = None,
) -> HttpResponse:
    """Check permission, validate, run one service, answer for htmx or a plain browser.

    `partial` names the form's own fragment (and its context variable): htmx gets it back fresh on
    success and with its errors on failure. Button-only forms answer 204, or an error in #flash.
    """
    incident = selectors.incident_get_for_user(request.user, pk, perm=perm)
    error: str | None = None
    if form.is_valid():
        try:
            incident = run(incident, form.cleaned_data)
        except ActionRefused as exc:
            error = str(exc)
            form.add_error(None, error)
    else:
        error = "; ".join(
            f"{'' if k == '__all__' else k + ': '}{' '.join(str(e) for e in v)}"
            for k, v in form.errors.items()
        )

    if request.htmx:
        if error is None:
            response = (
                render(
                    request, f"{DETAIL}#{partial}", {"incident": incident, partial: _fresh(form, incident)}
                )
                if partial
                else HttpResponse(status=204)
            )
            return trigger_client_event(response, CHANGED)
        if partial:
            return render(request, f"{DETAIL}#{partial}", {"incident": incident, partial: form}, status=422)
        response = render(request, "components/flash.html", {"error": error}, status=422)
        return reswap(retarget(response, "#flash"), "innerHTML")

    if error is None:
        messages.success(request, success)
        return HttpResponseRedirect(reverse("incidents:detail", args=[pk]))
    incident.refresh_from_db()
    if partial:
        context = _detail_context(request, incident, bound={partial: form})
    else:
        messages.error(request, error)
        context = _detail_context(request, incident)
    return TemplateResponse(request, DETAIL, context, status=422)


def _fresh(form: Form, incident: Incident) -> Form:
    """An empty copy of a submitted form, showing the incident's current values."""
    if isinstance(form, forms.CommanderForm):
        return forms.CommanderForm(
            candidates=selectors.commander_candidates(), initial={"commander": incident.commander_id}
        )
    if isinstance(form, forms.SeverityForm):
        return forms.SeverityForm(initial={"severity": incident.severity})
    if isinstance(form, forms.TypeForm):
        return forms.TypeForm(initial={"incident_type": incident.incident_type_id})
    return form.__class__()


@require_POST
def acknowledge(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        perm="incidents.act_on_incident",
        form=Form(request.POST),
        run=lambda i, d: services.incident_acknowledge(incident=i, actor=_actor(request)),
        success="Acknowledged.",
    )


@require_POST
def transition(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    form = forms.TransitionForm(request.POST)
    override = bool(request.POST.get("override_reason", "").strip())
    perm = "incidents.override_prerecovery" if override else "incidents.act_on_incident"
    return _act(
        request,
        pk,
        perm=perm,
        form=form,
        run=lambda i, d: services.incident_change_status(
            incident=i,
            actor=_actor(request),
            to_status=d["to_status"],
            from_status=d["from_status"] or None,
            override_reason=d["override_reason"],
        ),
        success="Status changed.",
        partial="override_form" if override else None,
    )


@require_POST
def change_severity(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        perm="incidents.act_on_incident",
        form=forms.SeverityForm(request.POST),
        run=lambda i, d: services.incident_change_severity(
            incident=i,
            actor=_actor(request),
            severity=d["severity"],
            reason=d["reason"],
            from_severity=d["from_severity"],
        ),
        success="Severity changed.",
        partial="severity_form",
    )


@require_POST
def assign_commander(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    form = forms.CommanderForm(request.POST, candidates=selectors.commander_candidates())
    return _act(
        request,
        pk,
        perm="incidents.act_on_incident",
        form=form,
        run=lambda i, d: services.incident_assign_commander(
            incident=i,
            actor=_actor(request),
            commander=d["commander"],
            from_commander=d["from_commander"],
        ),
        success="Commander assigned.",
        partial="commander_form",
    )


@require_POST
def change_type(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        perm="incidents.act_on_incident",
        form=forms.TypeForm(request.POST),
        run=lambda i, d: services.incident_change_type(
            incident=i,
            actor=_actor(request),
            incident_type=d["incident_type"],
            from_type=d["from_type"] or None,
        ),
        success="Type changed.",
        partial="type_form",
    )


@require_POST
def add_note(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        perm="incidents.act_on_incident",
        form=forms.NoteForm(request.POST),
        run=lambda i, d: services.incident_add_note(incident=i, actor=_actor(request), text=d["text"]),  # type: ignore[arg-type]
        success="Note added.",
        partial="note_form",
    )


@require_POST
def checklist_item(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        perm="incidents.act_on_incident",
        form=forms.ChecklistItemForm(request.POST),
        run=lambda i, d: services.incident_set_checklist_item(
            incident=i,
            actor=_actor(request),
            item_id=d["item"],
            done=d["done"],
        ),
        success="Checklist updated.",
    )


@require_http_methods(["GET", "POST"])
def edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    incident = selectors.incident_get_for_user(request.user, pk, perm="incidents.change_incident")
    if request.method == "GET":
        form = forms.EditForm(initial=_edit_values(incident))
        return render(request, "incidents/incident_edit.html", {"incident": incident, "form": form})
    form = forms.EditForm(request.POST)
    if form.is_valid():
        try:
            services.incident_edit(
                incident=incident,
                actor=_actor(request),
                title=form.cleaned_data["title"],
                description=form.cleaned_data["description"],
                affected_components=forms.split_components(form.cleaned_data["affected_components"]),
                war_room_url=form.cleaned_data["war_room_url"],
                seen=form.seen(),
            )
        except ActionRefused as exc:
            # Keep the person's text, and record that they have now seen the current values: saving
            # again is a deliberate overwrite.
            incident.refresh_from_db()
            data = request.POST.copy()
            for key, value in _edit_values(incident).items():
                if key.startswith("seen_"):
                    data[key] = value
            form = forms.EditForm(data)
            form.is_valid()
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Incident updated.")
            return redirect("incidents:detail", pk=pk)
    return render(request, "incidents/incident_edit.html", {"incident": incident, "form": form}, status=422)


def _edit_values(incident: Incident) -> dict[str, str]:
    shown = {
        "title": incident.title,
        "description": incident.description,
        "affected_components": ", ".join(incident.affected_components),
        "war_room_url": incident.war_room_url,
    }
    return shown | {f"seen_{k}": v for k, v in shown.items()}


def _actor(request: HtmxHttpRequest) -> User:
    """The logged-in user (every view but the poll's fast path runs behind LoginRequiredMiddleware)."""
    assert isinstance(request.user, User)
    return request.user


def _forbidden(request: HtmxHttpRequest, message: str) -> HttpResponse:
    return render(request, "403.html", {"exception": message}, status=403)
