"""Every write of playbook proposals: creating one (blank, or from a post-mortem's or a drill's
lesson), saving revisions, the review steps (through postmortems.review), re-basing on the version in
force, and the approval, which adopts the proposal as the next playbook version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from guardian.shortcuts import assign_perm

from console.errors import DomainError
from incidents.models import PlaybookVersion
from incidents.playbook import (
    PlaybookError,
    PlaybookMovedOn,
    canonical,
    current_version,
    parse_playbook_yaml,
    playbook_adopt,
    playbook_yaml,
    validate_playbook,
)
from playbookreview import selectors
from playbookreview.merge import three_way
from playbookreview.models import (
    PlaybookProposal,
    PlaybookProposalRevision,
    ProposalEvent,
)
from postmortems import review
from postmortems.review import ReviewStatus

MAX_YAML = 200_000
MAX_REASON = 10_000


class ProposalRefused(DomainError):
    pass


class InvalidPlaybook(ProposalRefused):
    """The proposed YAML is not a valid playbook: `errors` lists every problem, each with its place."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("The proposed playbook is not valid:\n" + "\n".join(f"- {e}" for e in self.errors))


@dataclass
class Conflict(Exception):
    """A save on an older revision than the newest: nothing was written."""

    proposal: PlaybookProposal
    base: int
    theirs: PlaybookProposalRevision


def record_event(proposal: PlaybookProposal, *, kind: str, actor: Any, text: str) -> ProposalEvent:
    """The only writer of a proposal's activity rows."""
    return ProposalEvent.objects.create(
        proposal_id=proposal.pk,
        kind=kind[:30],
        actor=actor if isinstance(actor, User) else None,
        text=text[:2000],
    )


def checked_document(text: str) -> dict[str, Any]:
    """The playbook in `text`, read and validated: InvalidPlaybook listing every problem."""
    if len(text) > MAX_YAML:
        raise InvalidPlaybook([f"the YAML is too long ({len(text)} characters, at most {MAX_YAML})"])
    try:
        document = parse_playbook_yaml(text)
    except PlaybookError as exc:
        raise InvalidPlaybook(exc.errors) from exc
    errors = validate_playbook(document)
    if errors:
        raise InvalidPlaybook(errors)
    return document


def _clean(title: str, reason: str) -> tuple[str, str]:
    title, reason = " ".join(title.split()), reason.replace("\r\n", "\n").strip()
    if not title:
        raise ProposalRefused("A proposal needs a title.")
    if len(title) > 200:
        raise ProposalRefused("The title is at most 200 characters.")
    if not reason:
        raise ProposalRefused("Say why the playbook should change: the reason is required.")
    if len(reason) > MAX_REASON:
        raise ProposalRefused(f"The reason is at most {MAX_REASON} characters.")
    return title, reason


def _text(yaml_text: str) -> str:
    return yaml_text.replace("\r\n", "\n")


def _lock(proposal: PlaybookProposal) -> PlaybookProposal:
    # The proposal's row only: locking its (shared, immutable) base version too would hold up every
    # incident declared meanwhile, whose foreign key check reads that row.
    return (
        PlaybookProposal.objects.select_for_update(of=("self",))
        .select_related("base_version")
        .get(pk=proposal.pk)
    )


def _moved_on(proposal: PlaybookProposal, current: PlaybookVersion | None) -> str:
    base = proposal.base_version.number
    if current is None:
        return "There is no playbook version in force."
    return (
        f"The playbook moved on: version {current.number} is in force, and this proposal was written "
        f"against version {base}. Rebase it on version {current.number} first (approving it as it is "
        f"would undo what changed since version {base})."
    )


@transaction.atomic
def proposal_create(
    *,
    actor: User,
    title: str,
    reason: str,
    yaml_text: str | None = None,
    postmortem: Any = None,
    drill: Any = None,
) -> PlaybookProposal:
    """A new draft.

    1. The version in force is its base; its YAML starts as that version's, unless given (then it
       must be a valid playbook: InvalidPlaybook, and nothing is written).
    2. The proposal and its revision 1, written by `actor`, who may edit it from now on (object
       permission), and a "created" activity row naming where it comes from.
    """
    if not selectors.may_propose(actor):
        raise ProposalRefused("Proposing a playbook change needs the responder, lead or admin role.")
    title, reason = _clean(title, reason)
    base = current_version()
    if base is None:
        raise ProposalRefused("There is no playbook version yet to propose a change to.")
    text = base.yaml if yaml_text is None else _text(yaml_text)
    if yaml_text is not None:
        checked_document(text)
    proposal = PlaybookProposal.objects.create(
        title=title,
        reason=reason,
        postmortem=postmortem,
        drill=drill,
        base_version=base,
        yaml=text,
        author=actor,
        current_revision=1,
    )
    PlaybookProposalRevision.objects.create(
        proposal=proposal,
        number=1,
        title=title,
        reason=reason,
        yaml=text,
        base_version=base,
        author=actor,
        note=f"Written against version {base.number}",
    )
    assign_perm(selectors.CHANGE, actor, proposal)
    origin = ""
    if postmortem is not None:
        origin = f", from the post-mortem of {postmortem.incident.reference}"
    elif drill is not None:
        origin = f", from the review of the {drill.drill_type.name} drill"
    record_event(
        proposal, kind="created", actor=actor, text=f"Proposed against version {base.number}{origin}"
    )
    return proposal


@transaction.atomic
def revision_save(
    *,
    proposal: PlaybookProposal,
    actor: User,
    title: str,
    reason: str,
    yaml_text: str,
    base: int,
    note: str = "",
) -> PlaybookProposalRevision:
    """An explicit save: a new revision on top of `base`.

    1. The title, the reason and the YAML are checked first (InvalidPlaybook lists every problem of
       the YAML); nothing is written when one is wrong.
    2. Lock the proposal. Only its editors save, and never once it is adopted (a further change is
       a new proposal).
    3. `base` must be the newest revision; on an older one, `Conflict`: someone saved meanwhile, and
       their revision is not overwritten (unless this is the very same content, a double click).
    4. The same content again writes nothing; otherwise the next revision, on the same playbook
       version, and a proposal in review goes back to draft (what the reviewers read changed).
    """
    title, reason = _clean(title, reason)
    text = _text(yaml_text)
    checked_document(text)
    p = _lock(proposal)
    if not selectors.may_edit(actor, p):
        if p.adopted_version_id:
            raise ProposalRefused("This proposal was adopted and stays as it was: propose a new change.")
        raise ProposalRefused("Only the author and the playbook's keepers (leads, admins) edit a proposal.")
    current = selectors.revision(p)
    same = (current.title, current.reason, current.yaml) == (title, reason, text)
    if base != p.current_revision:
        if same:
            return current
        raise Conflict(p, base, current)
    if same:
        return current
    saved = PlaybookProposalRevision.objects.create(
        proposal=p,
        number=p.current_revision + 1,
        title=title,
        reason=reason,
        yaml=text,
        base_version_id=p.base_version_id,
        author=actor,
        note=note.strip()[:200],
    )
    p.title, p.reason, p.yaml, p.current_revision = title, reason, text, saved.number
    p.save(update_fields=["title", "reason", "yaml", "current_revision"])
    record_event(
        p,
        kind="saved",
        actor=actor,
        text=f"Revision {saved.number} saved{': ' + saved.note if saved.note else ''}",
    )
    review.review_reopen_on_edit(p, actor)
    return saved


@transaction.atomic
def proposal_assign(
    *, proposal: PlaybookProposal, actor: User, reviewers: list[User], approver: User | None
) -> PlaybookProposal:
    """Name the reviewers and the approver (replacing the previous ones). The approver is never the
    author (postmortems.review and the database refuse it too) and is a playbook keeper."""
    p = _lock(proposal)
    if not selectors.may_assign(actor, p):
        raise ProposalRefused("Only the author and the playbook's keepers (leads, admins) assign reviewers.")
    if approver is not None and approver.pk != p.author_id and not selectors.may_approve_as(approver):
        raise ProposalRefused(
            f"{approver.get_username()} cannot approve: the approval adopts the playbook, so the approver "
            "is a lead or an admin."
        )
    result = review.review_assign(document=p, actor=actor, reviewers=reviewers, approver=approver)
    assert isinstance(result, PlaybookProposal)
    return result


@transaction.atomic
def proposal_submit(*, proposal: PlaybookProposal, actor: User) -> PlaybookProposal:
    """Draft → in review (the author signs the revision). Refused when the playbook moved on since
    the proposal's base (the reviewers would read a change to an old playbook: rebase first) and when
    the proposal proposes no change to the version in force."""
    p = _lock(proposal)
    if p.status == ReviewStatus.IN_REVIEW:
        return p
    if not selectors.may_edit(actor, p):
        raise ProposalRefused("Only the author and the playbook's keepers submit a proposal.")
    current = current_version()
    if current is None or current.pk != p.base_version_id:
        raise ProposalRefused(_moved_on(p, current))
    if canonical(selectors.document_of(p)) == canonical(current.document):
        raise ProposalRefused(
            f"This proposal proposes no change: its playbook is version {current.number}, the one in "
            "force. Edit it before submitting."
        )
    result = review.review_submit(document=p, actor=actor)
    assert isinstance(result, PlaybookProposal)
    return result


@transaction.atomic
def proposal_signoff(*, proposal: PlaybookProposal, actor: User) -> PlaybookProposal:
    result = review.review_signoff(document=proposal, actor=actor)
    assert isinstance(result, PlaybookProposal)
    return result


def proposal_sections(proposal: PlaybookProposal) -> list[str]:
    """What a comment attaches to: the reason, or one of the proposed playbook's sections."""
    return ["Reason", *selectors.document_of(proposal)]


@transaction.atomic
def proposal_comment(*, proposal: PlaybookProposal, actor: User, section: str, body: str) -> Any:
    """A reviewer's (or the approver's) comment on a section, on the revision they read."""
    if proposal.adopted_version_id:
        raise ProposalRefused("This proposal was adopted: comment on a new proposal instead.")
    if section not in proposal_sections(proposal):
        raise ProposalRefused(f"Unknown section {section!r}: comment on the reason or a playbook section.")
    return review.review_comment_add(document=proposal, actor=actor, section=section, body=body)


@transaction.atomic
def proposal_comment_resolve(*, comment: Any, actor: User) -> Any:
    return review.review_comment_resolve(comment=comment, actor=actor)


@transaction.atomic
def proposal_approve(*, proposal: PlaybookProposal, actor: User) -> PlaybookProposal:
    """The approval, which takes effect: all of it or nothing, in one transaction.

    1. Lock the proposal; one adopted already is returned as it is (a double click).
    2. Only the assigned approver (never the author, and a playbook keeper), only in review.
    3. The playbook in force must still be the proposal's base (else refused: its author rebases it),
       and the proposal must change it.
    4. The review's approval (status, the approver's sign-off, an activity row), then
       `playbook_adopt` with `expected=` the base, under the adoption lock: an approval of another
       proposal that got in first makes this one fail as in step 3. The proposal records the version.
    """
    p = _lock(proposal)
    if p.adopted_version_id is not None:
        return p
    if not (review.may_approve(actor, p) and selectors.may_approve_as(actor)):
        raise ProposalRefused(
            "Only the assigned approver, a lead or an admin who is not the author, approves."
        )
    if p.status != ReviewStatus.IN_REVIEW:
        raise ProposalRefused("Only a proposal in review is approved: submit it first.")
    current = current_version()
    if current is None or current.pk != p.base_version_id:
        raise ProposalRefused(_moved_on(p, current))
    document = checked_document(p.yaml)
    if canonical(document) == canonical(current.document):
        raise ProposalRefused("This proposal proposes no change to the version in force.")
    review.review_approve(document=p, actor=actor)
    try:
        version = playbook_adopt(
            document=document,
            note=f"{p.title}\n\n{p.reason}",
            actor=actor,
            source=f"proposal:{p.pk}",
            expected=p.base_version,
        )
    except PlaybookMovedOn as exc:
        raise ProposalRefused(_moved_on(p, exc.current)) from exc
    except PlaybookError as exc:
        raise InvalidPlaybook(exc.errors) from exc
    p.refresh_from_db(fields=["status", "approved_at", "approved_revision"])
    p.adopted_version = version
    p.save(update_fields=["adopted_version"])
    record_event(p, kind="adopted", actor=actor, text=f"Adopted as playbook version {version.number}")
    return p


@transaction.atomic
def proposal_rebase(
    *, proposal: PlaybookProposal, actor: User, take_current: bool = False
) -> PlaybookProposalRevision:
    """Re-base on the version in force: the proposal's changes (from its base to its text) applied
    on top of it (playbookreview.merge).

    1. Lock; only its editors, only while open. Based on the version in force already: the newest
       revision is returned as it is.
    2. Merge. Sections both sides changed differently refuse the rebase, named, unless
       `take_current`: then they take the version in force's text, and the author redoes that part.
    3. The merged document must be a valid playbook (two valid changes may not make one).
    4. The next revision, on the new base, its YAML written from the merged document; a proposal in
       review goes back to draft.
    """
    p = _lock(proposal)
    if not selectors.may_edit(actor, p):
        raise ProposalRefused("Only the author and the playbook's keepers rebase an open proposal.")
    current = current_version()
    if current is None:
        raise ProposalRefused("There is no playbook version in force.")
    if current.pk == p.base_version_id:
        return selectors.revision(p)
    merge = three_way(
        p.base_version.document, selectors.document_of(p), current.document, take_theirs=take_current
    )
    if merge.conflicts and not take_current:
        raise ProposalRefused(
            f"Cannot rebase on version {current.number}: it and this proposal both changed "
            f"{', '.join(merge.conflicts)}. Rebase taking version {current.number}'s text of "
            f"{'those' if len(merge.conflicts) > 1 else 'that'} and redo your change there, or edit by hand."
        )
    errors = validate_playbook(merge.document)
    if errors:
        raise InvalidPlaybook(errors)
    text = playbook_yaml(merge.document)
    taken = f"; took version {current.number}'s {', '.join(merge.conflicts)}" if merge.conflicts else ""
    saved = PlaybookProposalRevision.objects.create(
        proposal=p,
        number=p.current_revision + 1,
        title=p.title,
        reason=p.reason,
        yaml=text,
        base_version=current,
        author=actor,
        note=f"Rebased from version {p.base_version.number} on version {current.number}{taken}"[:200],
    )
    was = p.base_version.number
    p.yaml, p.base_version, p.current_revision = text, current, saved.number
    p.save(update_fields=["yaml", "base_version", "current_revision"])
    unchanged = canonical(merge.document) == canonical(current.document)
    record_event(
        p,
        kind="rebased",
        actor=actor,
        text=f"Rebased from version {was} on version {current.number} (revision {saved.number}){taken}"
        + ("; it now proposes no change" if unchanged else ""),
    )
    review.review_reopen_on_edit(p, actor)
    return saved
