"""The playbook's pages: the version in force section by section, the history of versions, one
version with its YAML (and its download), the diff of two versions, and recording the quarterly
review. Every role may read; leads and admins record the review."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console.diff import diff_texts
from console.http import HtmxHttpRequest
from incidents import playbook
from incidents.models import PlaybookReview, PlaybookVersion
from incidents.playbook_pages import READ_PERM, REVIEW_PERM


def _reader(request: HtmxHttpRequest) -> None:
    if not request.user.has_perm(READ_PERM):
        raise PermissionDenied("Reading the playbook needs a role.")


def _version(number: int) -> PlaybookVersion:
    version = PlaybookVersion.objects.select_related("created_by").filter(number=number).first()
    if version is None:
        raise Http404(f"No playbook version {number}.")
    return version


def _sections(version: PlaybookVersion) -> dict[str, Any]:
    """The document in reading order; other apps' sections as their YAML."""
    doc = version.document
    others = [
        (name, playbook.playbook_yaml({name: doc[name]}))
        for name in playbook.sections()
        if name not in playbook.CORE_SECTIONS and name in doc
    ]
    others += [
        (name, playbook.playbook_yaml({name: doc[name]})) for name in doc if name not in playbook.sections()
    ]
    severities = sorted(doc.get("severities", []), key=lambda s: s.get("level", 0))
    return {
        "severities": severities,
        "incident_types": doc.get("incident_types", []),
        "checklists": doc.get("checklists", []),
        "others": others,
    }


def _page(request: HtmxHttpRequest, version: PlaybookVersion | None, **extra: Any) -> dict[str, Any]:
    current = playbook.current_version()
    return {
        "version": version,
        "current": current,
        "sections": _sections(version) if version else None,
        "review_due": playbook.playbook_review_due(),
        "review_overdue": playbook.playbook_review_overdue(),
        "last_review": PlaybookReview.objects.select_related("reviewed_by").first(),
        "can_review": request.user.has_perm(REVIEW_PERM),
        **extra,
    }


@require_GET
def current(request: HtmxHttpRequest) -> HttpResponse:
    _reader(request)
    return render(request, "incidents/playbook.html", _page(request, playbook.current_version()))


@require_GET
def versions(request: HtmxHttpRequest) -> HttpResponse:
    _reader(request)
    rows = list(
        PlaybookVersion.objects.select_related("created_by").defer("document", "yaml").order_by("-number")
    )
    return render(request, "incidents/playbook_versions.html", _page(request, None, versions=rows))


@require_GET
def version(request: HtmxHttpRequest, number: int) -> HttpResponse:
    _reader(request)
    v = _version(number)
    previous = (
        PlaybookVersion.objects.filter(number__lt=number)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    return render(request, "incidents/playbook_version.html", _page(request, v, previous=previous))


@require_GET
def version_yaml(request: HtmxHttpRequest, number: int) -> HttpResponse:
    _reader(request)
    v = _version(number)
    response = HttpResponse(v.yaml, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="playbook-v{v.number}.yaml"'
    return response


@require_GET
def diff(request: HtmxHttpRequest, a: int, b: int) -> HttpResponse:
    _reader(request)
    old, new = _version(a), _version(b)
    context = {
        "old": old,
        "new": new,
        "diff": diff_texts(old.yaml, new.yaml),
        "old_label": f"Version {old.number}",
        "new_label": f"Version {new.number}",
        "numbers": list(PlaybookVersion.objects.order_by("-number").values_list("number", flat=True)),
    }
    return render(request, "incidents/playbook_diff.html", context)


@require_POST
def review(request: HtmxHttpRequest) -> HttpResponse:
    if not request.user.has_perm(REVIEW_PERM):
        raise PermissionDenied("Recording the playbook review needs the lead role.")
    assert isinstance(request.user, User)
    try:
        playbook.playbook_review_record(actor=request.user, note=request.POST.get("note", ""))
    except playbook.PlaybookError as exc:
        messages.error(request, str(exc))
    else:
        due = playbook.playbook_review_due()
        messages.success(request, f"Review recorded: no change. The next one is due {due:%d %b %Y}.")
    return HttpResponseRedirect(reverse("incidents:playbook"))
