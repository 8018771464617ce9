"""Every permission-scoped read of playbook proposals, and who may do what with one."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from incidents import playbook
from incidents.models import PlaybookVersion
from incidents.playbook_pages import REVIEW_PERM
from playbookreview.merge import Merge, three_way
from playbookreview.models import OPEN, PlaybookProposal, PlaybookProposalRevision
from postmortems.review import ReviewStatus

VIEW = "playbookreview.view_playbookproposal"
PROPOSE = "playbookreview.add_playbookproposal"
CHANGE = "playbookreview.change_playbookproposal"  # the author's, per proposal (guardian)
# The playbook keeper's permission, as the playbook pages use it (recording the quarterly review):
# leads and admins. Keepers edit any proposal and name its reviewers; an approver must be one, since
# the approval adopts the proposal as the playbook in force.
KEEP = REVIEW_PERM
ANY = [VIEW, CHANGE, "playbookreview.review_playbookproposal", "playbookreview.approve_playbookproposal"]


def proposals_visible_to(user: Any) -> QuerySet[PlaybookProposal]:
    """All for the roles that read proposals; else those the person writes, reviews or approves."""
    if not user.is_authenticated:
        return PlaybookProposal.objects.none()
    return get_objects_for_user(
        user, ANY, klass=PlaybookProposal, any_perm=True, accept_global_perms=True, with_superuser=True
    )


def proposal_get_for_user(user: Any, pk: int) -> PlaybookProposal:
    found = (
        proposals_visible_to(user)
        .select_related("author", "approver", "base_version", "adopted_version", "postmortem__incident")
        .select_related("drill__drill_type")
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise Http404("No such playbook proposal.")
    return found


def proposal_list(user: Any, *, status: str = "") -> QuerySet[PlaybookProposal]:
    qs = proposals_visible_to(user).select_related(
        "author", "approver", "base_version", "adopted_version", "postmortem__incident", "drill__drill_type"
    )
    if status in ReviewStatus.values:
        qs = qs.filter(status=status)
    return qs.defer("yaml", "base_version__document", "base_version__yaml").defer(
        "adopted_version__document", "adopted_version__yaml"
    )


def may_propose(user: Any) -> bool:
    return bool(user.has_perm(PROPOSE))


def may_edit(user: Any, proposal: PlaybookProposal) -> bool:
    """The author (object permission) and the playbook's keepers; nobody once it is adopted."""
    return proposal.status in OPEN and bool(user.has_perm(KEEP) or user.has_perm(CHANGE, proposal))


def may_assign(user: Any, proposal: PlaybookProposal) -> bool:
    return may_edit(user, proposal)


def may_approve_as(user: Any) -> bool:
    """Whether `user` may be a proposal's approver at all: approving adopts the playbook."""
    return bool(user.is_active and user.has_perm(KEEP))


def approver_candidates() -> QuerySet[Any]:
    """The active people who may approve: those holding the keeper's permission through a role, in
    person, or as superusers."""
    app_label, codename = KEEP.split(".")
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__permissions=perm) | Q(user_permissions=perm) | Q(is_superuser=True))
        .distinct()
        .order_by("username")
    )


def require(condition: bool, what: str) -> None:
    if not condition:
        raise PermissionDenied(what)


def revision(proposal: PlaybookProposal, number: int | None = None) -> PlaybookProposalRevision:
    found = (
        PlaybookProposalRevision.objects.select_related("author", "base_version")
        .filter(proposal=proposal, number=number or proposal.current_revision)
        .first()
    )
    if found is None:
        raise Http404("No such revision.")
    return found


def document_of(proposal: PlaybookProposal) -> dict[str, Any]:
    """The proposed playbook (saved proposals always hold a readable, valid document)."""
    return playbook.parse_playbook_yaml(proposal.yaml)


def moved_on(proposal: PlaybookProposal) -> PlaybookVersion | None:
    """The version in force when it is no longer the proposal's base (an open proposal only)."""
    if proposal.status not in OPEN:
        return None
    current = playbook.current_version()
    return current if current is not None and current.pk != proposal.base_version_id else None


def rebase_preview(proposal: PlaybookProposal, current: PlaybookVersion) -> Merge:
    """What a rebase on `current` would do: clean, or the sections both sides changed."""
    return three_way(proposal.base_version.document, document_of(proposal), current.document)


# --- Where a proposal comes from: a post-mortem's or a drill's lesson ----------------------------

_PLACEHOLDER = re.compile(r"^\[[^\]]*\]$")


def _lesson(text: str) -> str:
    """A section's text, unless it is still the template's placeholder ("[Key takeaways]")."""
    text = text.strip()
    return "" if _PLACEHOLDER.match(text) else text


def initial_from_postmortem(postmortem: Any) -> dict[str, str]:
    from postmortems.export import section_text
    from postmortems.models import PostMortemRevision

    incident = postmortem.incident
    body = (
        PostMortemRevision.objects.filter(postmortem=postmortem, number=postmortem.current_revision)
        .values_list("body", flat=True)
        .first()
        or ""
    )
    parts = [f"From the post-mortem of {incident.reference} ({postmortem.title})."]
    for name in ("Lessons Learned", "Root Cause"):
        if text := _lesson(section_text(body, name)):
            parts.append(f"{name}:\n{text}")
            break
    return {
        "title": f"Lessons from {incident.reference}: {postmortem.title}"[:200],
        "reason": "\n\n".join(parts),
    }


def initial_from_drill(drill: Any) -> dict[str, str]:
    day = f"{timezone.localtime(drill.scheduled_for):%Y-%m-%d}"
    name = drill.drill_type.name
    parts = [f"From the review of the {name} drill of {day}."]
    if text := drill.playbook_proposal.strip():
        parts.append(f"Proposed playbook changes:\n{text}")
    if text := drill.findings.strip():
        parts.append(f"Findings:\n{text}")
    return {"title": f"Lessons from the {name} drill of {day}"[:200], "reason": "\n\n".join(parts)}
