"""The compose panel: pick a template, preview it filled in from the incident, edit, send."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from comms import forms, rendering, services
from console.http import HtmxHttpRequest
from incidents.selectors import incident_get_for_user

ACT = "incidents.act_on_incident"


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _context(incident: object, form: forms.ComposeForm, **extra: object) -> dict[str, object]:
    """The compose panel's context, shaped as the page's panel gets it (`ctx.form`)."""
    return {"incident": incident, "ctx": {"form": form}, **extra}


@require_POST
def preview(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The chosen template filled in from the incident and the form, ready to edit and send."""
    incident = incident_get_for_user(request.user, pk, perm=ACT)
    form = forms.ComposeForm(request.POST)
    if not form.is_valid():
        return render(request, "comms/compose.html#compose", _context(incident, form), status=422)
    data = form.cleaned_data
    title, text = rendering.render(
        data["kind"], incident, extra={k: v for k, v in data.items() if k != "kind"}
    )
    send = forms.SendForm(initial={"kind": data["kind"], "title": title, "text": text})
    return render(request, "comms/compose.html#compose", _context(incident, form, send=send))


@require_POST
def send(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    incident = incident_get_for_user(request.user, pk, perm=ACT)
    form = forms.SendForm(request.POST)
    error = None
    if form.is_valid():
        try:
            services.message_send(incident=incident, actor=_user(request), **form.cleaned_data)
        except services.CommsRefused as exc:
            error = str(exc)
    else:
        error = "; ".join(str(e) for errors in form.errors.values() for e in errors)
    if request.htmx:
        if error:
            context = _context(incident, forms.ComposeForm(), send=form, error=error)
            return render(request, "comms/compose.html#compose", context, status=422)
        context = _context(incident, forms.ComposeForm(), sent=True)
        return trigger_client_event(
            render(request, "comms/compose.html#compose", context), "incident-changed"
        )
    (messages.error if error else messages.success)(request, error or "Message queued for delivery.")
    return HttpResponseRedirect(reverse("incidents:detail", args=[pk]))
