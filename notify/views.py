"""A person's inbox (the bell in the top bar) and their contact points."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from console.http import HtmxHttpRequest
from notify import forms, selectors, services
from notify.models import ContactPoints


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@require_GET
@vary_on_headers("HX-Request")
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    page = Paginator(selectors.inbox_for(request.user), 25).get_page(request.GET.get("page"))
    return render(
        request, "notify/inbox.html", {"page": page, "unread": selectors.unread_count(request.user)}
    )


@require_GET
def bell(request: HtmxHttpRequest) -> HttpResponse:
    """The top bar's bell, re-fetched every 10 s: one count query."""
    return render(request, "notify/bell.html", {"inbox_unread": selectors.unread_count(request.user)})


@require_POST
def mark_read(request: HtmxHttpRequest) -> HttpResponse:
    form = forms.MarkReadForm(request.POST)
    item = form.cleaned_data.get("item") if form.is_valid() else None
    services.inbox_mark_read(user=_user(request), item_ids=[item] if item else None)
    return redirect("notify:inbox")


@require_http_methods(["GET", "POST"])
def contact(request: HtmxHttpRequest) -> HttpResponse:
    """Where the console pages me: email, chat handle, a personal webhook (the inbox always)."""
    points, _ = ContactPoints.objects.get_or_create(user=_user(request))
    form = forms.ContactPointsForm(request.POST or None, instance=points)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Contact points saved.")
        return redirect("notify:contact")
    return render(request, "notify/contact.html", {"form": form}, status=422 if form.errors else 200)
