"""Playbook proposal pages: the list, a new proposal (blank or from a post-mortem or a drill), the
proposal with its diff against the version it was written against, its editor and revision history,
and the review steps. Every form works as a plain POST; comments also swap in place with htmx."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from console.diff import diff_texts
from console.http import HtmxHttpRequest
from incidents import playbook
from playbookreview import forms, selectors, services
from playbookreview.merge import changed_sections
from playbookreview.models import PlaybookProposal
from postmortems import review
from postmortems.models import ReviewComment
from postmortems.review import ReviewStatus

DETAIL = "playbookreview/proposal_detail.html"
EDIT = "playbookreview/proposal_edit.html"
CHANGED = "proposal-changed"


def _user(request: HtmxHttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _back(proposal: PlaybookProposal) -> HttpResponse:
    return redirect("playbookreview:detail", proposal.pk)


@require_GET
def proposal_list(request: HtmxHttpRequest) -> HttpResponse:
    selectors.require(request.user.has_perm(selectors.VIEW), "Reading playbook proposals needs a role.")
    status = request.GET.get("status", "")
    rows = list(selectors.proposal_list(request.user, status=status)[:300])
    groups = [(value, label, [p for p in rows if p.status == value]) for value, label in ReviewStatus.choices]
    return render(
        request,
        "playbookreview/proposal_list.html",
        {
            "groups": [g for g in groups if g[2] or status == g[0]],
            "status": status,
            "statuses": [(v, label) for v, label in ReviewStatus.choices if v != ReviewStatus.PUBLISHED],
            "can_propose": selectors.may_propose(request.user),
            "current": playbook.current_version(),
        },
    )


def _origin(request: HtmxHttpRequest, data: Any) -> tuple[Any, Any]:
    """The post-mortem or drill a new proposal comes from (?postmortem= or ?drill=, or the form's
    hidden fields), as the person may see it: 404 otherwise."""
    from drills.selectors import drill_get
    from postmortems.selectors import postmortem_get_for_user

    pm_id, drill_id = _int(data.get("postmortem")), _int(data.get("drill"))
    postmortem = postmortem_get_for_user(request.user, pm_id) if pm_id else None
    drill = None
    if drill_id and postmortem is None:
        if not request.user.has_perm("drills.view_drill"):
            raise Http404("No such drill.")
        drill = drill_get(drill_id)
    return postmortem, drill


@require_http_methods(["GET", "POST"])
def proposal_new(request: HtmxHttpRequest) -> HttpResponse:
    selectors.require(
        selectors.may_propose(request.user),
        "Proposing playbook changes needs the responder, lead or admin role.",
    )
    current = playbook.current_version()
    if current is None:
        raise Http404("There is no playbook version yet.")
    postmortem, drill = _origin(request, request.POST if request.method == "POST" else request.GET)
    initial: dict[str, Any] = {"yaml": current.yaml}
    if postmortem is not None:
        initial |= selectors.initial_from_postmortem(postmortem) | {"postmortem": postmortem.pk}
    elif drill is not None:
        initial |= selectors.initial_from_drill(drill) | {"drill": drill.pk}
    form = forms.ProposalForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            proposal = services.proposal_create(
                actor=_user(request),
                title=data["title"],
                reason=data["reason"],
                yaml_text=data["yaml"],
                postmortem=postmortem,
                drill=drill,
            )
        except services.InvalidPlaybook as exc:
            for error in exc.errors:
                form.add_error("yaml", error)
        except services.ProposalRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, "Proposal saved as a draft: assign reviewers and an approver, then submit it."
            )
            return _back(proposal)
    return render(
        request,
        "playbookreview/proposal_new.html",
        {"form": form, "current": current, "postmortem": postmortem, "drill": drill},
        status=422 if form.errors else 200,
    )


def _detail_context(request: HtmxHttpRequest, p: PlaybookProposal) -> dict[str, Any]:
    user = _user(request)
    document = selectors.document_of(p)
    base = p.base_version
    moved_on = selectors.moved_on(p)
    can_edit = selectors.may_edit(user, p)
    return {
        "proposal": p,
        "base": base,
        "diff": diff_texts(base.yaml, playbook.playbook_yaml(document)),
        "old_label": f"Version {base.number}",
        "new_label": f"Proposal, revision {p.current_revision}",
        "changed": changed_sections(base.document, document),
        "moved_on": moved_on,
        "rebase": selectors.rebase_preview(p, moved_on) if moved_on and can_edit else None,
        "sections": services.proposal_sections(p),
        "comments": review.comments_of(p),
        "signoffs": review.signoffs_of(p),
        "reviewers": review.reviewers_of(p),
        "events": list(p.events.select_related("actor")),
        "can_edit": can_edit,
        "can_assign": selectors.may_assign(user, p),
        "can_review": review.may_review(user, p) and p.adopted_version_id is None,
        "can_approve": review.may_approve(user, p) and selectors.may_approve_as(user),
        "candidates": get_user_model()
        .objects.filter(is_active=True, groups__isnull=False)
        .distinct()
        .order_by("username"),
        "approvers": selectors.approver_candidates().exclude(pk=p.author_id),
    }


@require_GET
def proposal_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    p = selectors.proposal_get_for_user(request.user, pk)
    return render(request, DETAIL, _detail_context(request, p))


@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def proposal_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET: the editor on the newest revision. POST: a save on the revision the form carries. An
    invalid playbook is refused with every error listed (422) and a save on an older revision with
    the difference shown (409); either way the form keeps what the person typed."""
    p = selectors.proposal_get_for_user(request.user, pk)
    selectors.require(
        selectors.may_edit(request.user, p),
        "Only the author and the playbook's keepers edit an open proposal.",
    )
    conflict: services.Conflict | None = None
    if request.method == "POST":
        form = forms.ProposalForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.revision_save(
                    proposal=p,
                    actor=_user(request),
                    title=data["title"],
                    reason=data["reason"],
                    yaml_text=data["yaml"],
                    base=data["base"] or 0,
                    note=data["note"],
                )
            except services.Conflict as exc:
                conflict = exc
            except services.InvalidPlaybook as exc:
                for error in exc.errors:
                    form.add_error("yaml", error)
            except services.ProposalRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Saved.")
                return _back(p)
    else:
        form = forms.ProposalForm(
            initial={"title": p.title, "reason": p.reason, "yaml": p.yaml, "base": p.current_revision}
        )
    context: dict[str, Any] = {"proposal": p, "form": form, "conflict": conflict}
    if conflict is not None:
        # The next save is made knowingly on the newest revision; what was typed stays in the form.
        mine = request.POST.get("yaml", "").replace("\r\n", "\n")
        data = request.POST.copy()
        data["base"] = str(conflict.theirs.number)
        form = forms.ProposalForm(data)
        form.is_valid()
        context["form"] = form
        context |= {
            "diff": diff_texts(conflict.theirs.yaml, mine),
            "old_label": f"Revision {conflict.theirs.number} (saved by "
            f"{conflict.theirs.author.get_username() if conflict.theirs.author else 'someone'})",
            "new_label": "Your text",
        }
    status = 409 if conflict is not None else 422 if form.errors else 200
    return render(request, EDIT, context, status=status)


@require_GET
def proposal_history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    p = selectors.proposal_get_for_user(request.user, pk)
    b = _int(request.GET.get("b")) or p.current_revision
    a = _int(request.GET.get("a")) or max(1, b - 1)
    old, new = selectors.revision(p, a), selectors.revision(p, b)
    return render(
        request,
        "playbookreview/proposal_history.html",
        {
            "proposal": p,
            "revisions": list(p.revisions.select_related("author", "base_version").defer("yaml")),
            "a": a,
            "b": b,
            "old": old,
            "new": new,
            "diff": diff_texts(old.yaml, new.yaml),
            "old_label": f"r{a}",
            "new_label": f"r{b}",
        },
    )


@require_POST
def proposal_assign(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    p = selectors.proposal_get_for_user(request.user, pk)
    selectors.require(
        selectors.may_assign(request.user, p), "Only the author and the playbook's keepers assign reviewers."
    )
    users = get_user_model().objects.filter(is_active=True)
    reviewers = list(users.filter(pk__in=[_int(v) for v in request.POST.getlist("reviewers") if _int(v)]))
    approver_id = _int(request.POST.get("approver"))
    approver = users.filter(pk=approver_id).first() if approver_id else None
    try:
        services.proposal_assign(proposal=p, actor=_user(request), reviewers=reviewers, approver=approver)
    except (services.ProposalRefused, review.ReviewRefused) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Reviewers and approver saved.")
    return _back(p)


def _step(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    p = selectors.proposal_get_for_user(request.user, pk)
    user = _user(request)
    try:
        if action == "submit":
            selectors.require(
                selectors.may_edit(user, p), "Only the author and the playbook's keepers submit."
            )
            services.proposal_submit(proposal=p, actor=user)
            messages.success(request, "Submitted for review.")
        elif action == "signoff":
            selectors.require(review.may_review(user, p), "Only an assigned reviewer signs off.")
            services.proposal_signoff(proposal=p, actor=user)
            messages.success(request, "Signed off.")
        elif action == "approve":
            selectors.require(review.may_approve(user, p), "Only the assigned approver approves.")
            p = services.proposal_approve(proposal=p, actor=user)
            assert p.adopted_version is not None
            messages.success(request, f"Approved: the playbook is now version {p.adopted_version.number}.")
        elif action == "rebase":
            selectors.require(
                selectors.may_edit(user, p), "Only the author and the playbook's keepers rebase."
            )
            saved = services.proposal_rebase(
                proposal=p, actor=user, take_current=request.POST.get("take_current") == "1"
            )
            messages.success(
                request, f"Based on version {saved.base_version.number} (revision {saved.number})."
            )
    except (services.ProposalRefused, review.ReviewRefused) as exc:
        messages.error(request, str(exc))
    return _back(p)


@require_POST
def proposal_submit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "submit")


@require_POST
def proposal_signoff(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "signoff")


@require_POST
def proposal_approve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "approve")


@require_POST
def proposal_rebase(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, "rebase")


def _comments(request: HtmxHttpRequest, p: PlaybookProposal, *, error: str = "") -> HttpResponse:
    """After a comment: the comments region when htmx asked (an error keeps the form's text), else
    back to the page."""
    if request.htmx:
        context = _detail_context(request, p) | {
            "comment_error": error,
            "comment_body": request.POST.get("body", "") if error else "",
        }
        response = render(request, f"{DETAIL}#comments", context, status=422 if error else 200)
        return response if error else trigger_client_event(response, CHANGED)
    if error:
        messages.error(request, error)
    return _back(p)


@require_POST
def comment_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    p = selectors.proposal_get_for_user(request.user, pk)
    selectors.require(review.may_review(request.user, p), "Only the assigned reviewers and approver comment.")
    try:
        services.proposal_comment(
            proposal=p,
            actor=_user(request),
            section=request.POST.get("section", ""),
            body=request.POST.get("body", ""),
        )
    except (services.ProposalRefused, review.ReviewRefused) as exc:
        return _comments(request, p, error=str(exc))
    return _comments(request, p)


@require_POST
def comment_resolve(request: HtmxHttpRequest, pk: int, comment_id: int) -> HttpResponse:
    p = selectors.proposal_get_for_user(request.user, pk)
    comment = get_object_or_404(
        ReviewComment, pk=comment_id, object_id=p.pk, content_type=ContentType.objects.get_for_model(p)
    )
    selectors.require(
        review.may_review(request.user, p) or p.author_id == request.user.pk,
        "Only the reviewers, the approver and the author resolve comments.",
    )
    try:
        services.proposal_comment_resolve(comment=comment, actor=_user(request))
    except review.ReviewRefused as exc:
        return _comments(request, p, error=str(exc))
    return _comments(request, p)
