"""Post-mortem pages: the list, the document, the editor (autosave, preview, conflicts), the
revision history, the review steps and the export. Every HTMX form also works as a plain POST."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import retarget

from console import markdown
from console.diff import diff_texts
from console.http import HtmxHttpRequest
from incidents.selectors import incident_get_for_user
from postmortems import export, review, selectors, services
from postmortems.models import PostMortem, ReviewComment
from postmortems.review import ReviewRefused


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _back(pm: PostMortem) -> HttpResponse:
    return redirect("postmortems:detail", pm.pk)


@require_GET
def postmortem_list(request: HtmxHttpRequest) -> HttpResponse:
    selectors.require(
        request.user.has_perm("postmortems.view_postmortem") or request.user.is_authenticated, ""
    )
    mine = request.GET.get("mine") == "1"
    status = request.GET.get("status", "")
    late = request.GET.get("overdue") == "1"
    rows = list(selectors.postmortem_list(request.user, mine=mine, status=status, late=late)[:200])
    return render(
        request,
        "postmortems/postmortem_list.html",
        {
            "rows": rows,
            "mine": mine,
            "status": status,
            "late": late,
            "now": timezone.now(),
            "statuses": review.ReviewStatus.choices,
        },
    )


def _detail_context(request: HtmxHttpRequest, pm: PostMortem) -> dict[str, Any]:
    user = _user(request)
    current = selectors.revision(pm)
    return {
        "pm": pm,
        "incident": pm.incident,
        "revision": current,
        "html": markdown.render(current.body),
        "sections": export.sections_in(current.body),
        "comments": review.comments_of(pm),
        "signoffs": review.signoffs_of(pm),
        "reviewers": review.reviewers_of(pm),
        "actions": export.action_items_context(pm),
        "can_edit": selectors.may_edit(user, pm),
        "can_assign": selectors.may_assign(user),
        "can_review": review.may_review(user, pm),
        "can_approve": review.may_approve(user, pm),
        "can_publish": selectors.may_publish(user, pm),
        "candidates": get_user_model()
        .objects.filter(is_active=True, groups__isnull=False)
        .distinct()
        .order_by("username"),
        "now": timezone.now(),
    }


@require_GET
def postmortem_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    return render(request, "postmortems/postmortem_detail.html", _detail_context(request, pm))


def _conflict_response(
    request: HtmxHttpRequest, conflict: services.Conflict, *, note: str = ""
) -> HttpResponse:
    context = {
        "pm": conflict.postmortem,
        "conflict": conflict,
        "diff": diff_texts(conflict.theirs.body, conflict.mine),
        "merged": conflict.theirs.body,
        "old_label": f"Theirs (revision {conflict.theirs.number})",
        "note": note,
    }
    if request.htmx:
        return retarget(render(request, "postmortems/conflict.html", context, status=409), "#conflict")
    return render(request, "postmortems/postmortem_conflict.html", context, status=409)


@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def postmortem_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET: the editor (the person's autosaved copy when it is on the newest revision). POST: an
    explicit save on the base revision the form carries; an older base is refused with a 409 showing
    both versions and a merge box."""
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.need_edit(request.user, pm)
    user = _user(request)
    error = ""
    if request.method == "POST":
        body = request.POST.get("body", "")
        base = _int(request.POST.get("base"))
        try:
            services.revision_save(
                postmortem=pm, actor=user, body=body, base=base, note=request.POST.get("note", "")
            )
        except services.Conflict as conflict:
            return _conflict_response(request, conflict, note=request.POST.get("note", ""))
        except services.PostMortemRefused as exc:
            error = str(exc)
        else:
            messages.success(request, "Saved.")
            return _back(pm)
        current, text, base_no = selectors.revision(pm), body, base
    else:
        current = selectors.revision(pm)
        draft = selectors.draft_of(user, pm)
        text, base_no = current.body, current.number
        if draft is not None and draft.body != current.body:
            text, base_no = draft.body, draft.base
    return render(
        request,
        "postmortems/postmortem_edit.html",
        {
            "pm": pm,
            "body": text,
            "base": base_no,
            "current": current,
            "error": error,
            "html": markdown.render(text),
            "draft_restored": request.method == "GET" and text != current.body,
        },
        status=422 if error else 200,
    )


@require_POST
def postmortem_autosave(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The editor's debounced autosave: the person's working copy, never a revision. On an older base
    the copy is kept and the conflict shown (409)."""
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.need_edit(request.user, pm)
    try:
        draft, conflict = services.draft_autosave(
            postmortem=pm,
            actor=_user(request),
            body=request.POST.get("body", ""),
            base=_int(request.POST.get("base")),
        )
    except services.PostMortemRefused as exc:
        return HttpResponse(str(exc), status=422)
    if conflict is not None:
        return _conflict_response(request, conflict)
    if not request.htmx:
        return redirect("postmortems:edit", pm.pk)
    return render(request, "postmortems/autosaved.html", {"draft": draft})


@require_POST
def postmortem_preview(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.need_edit(request.user, pm)
    return render(
        request, "postmortems/preview.html", {"html": markdown.render(request.POST.get("body", ""))}
    )


@require_GET
def postmortem_history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    revisions = list(pm.revisions.select_related("author").defer("body"))
    b = _int(request.GET.get("b"), pm.current_revision)
    a = _int(request.GET.get("a"), max(1, b - 1))
    old, new = selectors.revision(pm, a), selectors.revision(pm, b)
    return render(
        request,
        "postmortems/postmortem_history.html",
        {
            "pm": pm,
            "revisions": revisions,
            "a": a,
            "b": b,
            "diff": diff_texts(old.body, new.body),
            "old_label": f"r{a}",
            "new_label": f"r{b}",
        },
    )


@require_POST
def postmortem_impact(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.need_edit(request.user, pm)
    orders_raw, exposure_raw = (
        request.POST.get("orders_affected", "").strip(),
        request.POST.get("exposure_usd", "").strip(),
    )
    try:
        orders = int(orders_raw) if orders_raw else None
        exposure = Decimal(exposure_raw) if exposure_raw else None
        if (orders is not None and orders < 0) or (exposure is not None and not exposure.is_finite()):
            raise ValueError
    except (ValueError, InvalidOperation):
        messages.error(request, "Orders affected is a whole number and the exposure an amount in USD.")
        return _back(pm)
    services.impact_update(postmortem=pm, actor=_user(request), orders_affected=orders, exposure_usd=exposure)
    messages.success(request, "Impact figures saved.")
    return _back(pm)


@require_POST
def postmortem_assign(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.require(selectors.may_assign(request.user), "Only a lead or an admin assigns reviewers.")
    users = get_user_model().objects.filter(is_active=True)
    reviewers = list(users.filter(pk__in=[_int(v) for v in request.POST.getlist("reviewers")]))
    approver_id = _int(request.POST.get("approver"))
    approver = users.filter(pk=approver_id).first() if approver_id else None
    try:
        review.review_assign(document=pm, actor=_user(request), reviewers=reviewers, approver=approver)
    except ReviewRefused as exc:
        messages.error(request, str(exc))
    return _back(pm)


def _step(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    user = _user(request)
    try:
        if action == "submit":
            selectors.need_edit(user, pm)
            review.review_submit(document=pm, actor=user)
        elif action == "signoff":
            selectors.require(review.may_review(user, pm), "Only an assigned reviewer signs off.")
            review.review_signoff(document=pm, actor=user)
        elif action == "approve":
            selectors.require(review.may_approve(user, pm), "Only the assigned approver approves.")
            review.review_approve(document=pm, actor=user)
        elif action == "publish":
            selectors.require(
                selectors.may_publish(user, pm), "Only the author, the approver or a lead publishes."
            )
            review.review_publish(document=pm, actor=user)
    except ReviewRefused as exc:
        messages.error(request, str(exc))
    return _back(pm)


@require_POST
def postmortem_submit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "submit")


@require_POST
def postmortem_signoff(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "signoff")


@require_POST
def postmortem_approve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "approve")


@require_POST
def postmortem_publish(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "publish")


@require_POST
def comment_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.require(
        review.may_review(request.user, pm), "Only the assigned reviewers and approver comment."
    )
    try:
        review.review_comment_add(
            document=pm,
            actor=_user(request),
            section=request.POST.get("section", ""),
            body=request.POST.get("body", ""),
        )
    except ReviewRefused as exc:
        messages.error(request, str(exc))
    return _back(pm)


@require_POST
def comment_resolve(request: HtmxHttpRequest, pk: int, comment_id: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    comment = get_object_or_404(
        ReviewComment, pk=comment_id, object_id=pm.pk, content_type__model="postmortem"
    )
    try:
        review.review_comment_resolve(comment=comment, actor=_user(request))
    except ReviewRefused as exc:
        raise PermissionDenied(str(exc)) from exc
    return _back(pm)


@require_POST
def postmortem_request(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """From the incident page: ask for the optional post-mortem of a resolved incident."""
    incident = incident_get_for_user(request.user, pk, perm="incidents.act_on_incident")
    try:
        pm = services.postmortem_request(incident=incident, actor=_user(request))
    except services.PostMortemRefused as exc:
        messages.error(request, str(exc))
        return redirect("incidents:detail", incident.pk)
    return _back(pm)


@require_GET
def postmortem_export(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The published revision as Markdown, in the playbook's template layout."""
    pm = selectors.postmortem_get_for_user(request.user, pk)
    if pm.published_revision is None:
        messages.error(request, "Only a published post-mortem is exported.")
        return _back(pm)
    response = HttpResponse(export.markdown_of(pm), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="postmortem-INC-{pm.incident_id}.md"'
    return response


@require_POST
def postmortem_send_summary(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pm = selectors.postmortem_get_for_user(request.user, pk)
    selectors.require(
        selectors.may_publish(request.user, pm), "Only the author, the approver or a lead sends it."
    )
    try:
        channel = services.summary_send(postmortem=pm, actor=_user(request))
    except services.PostMortemRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Summary queued for #{channel}.")
    return _back(pm)
