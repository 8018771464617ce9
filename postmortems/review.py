"""The review workflow of a written document, reusable by any document type.

A post-mortem is the first document reviewed this way; a playbook revision proposal is meant to be
the second. A document type takes part by:

1. inheriting `ReviewedDocument` (status draft → in review → approved → published, author, approver,
   the moments of each step, and a database constraint that the approver is never the author), with
   `class Meta(ReviewedDocument.Meta)` and two object permissions named after its model:
   `review_<model>` and `approve_<model>` (guardian grants them per document, `review_assign`);
2. implementing `review_revision()` (the number of the revision being reviewed, which sign-offs and
   comments record) and, optionally, `review_event(kind, actor, text)` (e.g. a timeline row);
3. calling the services below. Submitting (and assigning while in review) asks each reviewer and
   the approver by inbox and outbox, once per revision; `review_url()` (its `<app>:detail` page) and
   `review_incident_id()` say where the request points. `SignOff` and `ReviewComment`
   (postmortems.models) attach to any document through a generic foreign key, so the new type
   needs no tables for them.

The transition table (`MOVES`) is the documentation of the lifecycle.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_users_with_perms, remove_perm

from console.errors import DomainError


class ReviewStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    PUBLISHED = "published", "Published"


# (from, to): the action that makes the move. An edit of an approved or published document starts a
# new revision and sends it back to draft (`review_reopen_on_edit`).
MOVES = {
    (ReviewStatus.DRAFT, ReviewStatus.IN_REVIEW): "submit",
    (ReviewStatus.IN_REVIEW, ReviewStatus.APPROVED): "approve",
    (ReviewStatus.IN_REVIEW, ReviewStatus.DRAFT): "edit",
    (ReviewStatus.APPROVED, ReviewStatus.PUBLISHED): "publish",
    (ReviewStatus.APPROVED, ReviewStatus.DRAFT): "edit",
    (ReviewStatus.PUBLISHED, ReviewStatus.DRAFT): "edit",
}


class ReviewRefused(DomainError):
    pass


class ReviewedDocument(models.Model):
    status = models.CharField(max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.DRAFT)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    approved_revision = models.PositiveIntegerField(null=True, blank=True)
    published_revision = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=Q(approver__isnull=True) | Q(author__isnull=True) | ~Q(approver=F("author")),
                name="%(app_label)s_%(class)s_approver_not_author",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReviewStatus.values), name="%(app_label)s_%(class)s_status_valid"
            ),
        ]

    def review_revision(self) -> int:
        raise NotImplementedError

    def review_event(self, kind: str, actor: User | None, text: str) -> None:
        """A step of the review happened (submitted, approved, published, assigned): record it."""

    def review_url(self) -> str:
        """The document's page (`<app>:detail`), where reviewers read, comment and approve."""
        from django.urls import reverse

        return reverse(f"{self._meta.app_label}:detail", args=[self.pk])

    def review_incident_id(self) -> int | None:
        """The incident a notification about the document belongs to, if any."""
        return None

    @property
    def frozen(self) -> bool:
        return self.status in (ReviewStatus.APPROVED, ReviewStatus.PUBLISHED)


def perm_name(document: ReviewedDocument, what: str) -> str:
    """`<app>.review_<model>` or `<app>.approve_<model>`."""
    meta = document._meta
    return f"{meta.app_label}.{what}_{meta.model_name}"


def reviewers_of(document: ReviewedDocument) -> list[User]:
    codename = perm_name(document, "review").split(".", 1)[1]
    users = get_users_with_perms(document, only_with_perms_in=[codename], with_group_users=False)
    return sorted(users, key=lambda u: u.get_username())


def may_review(user: Any, document: ReviewedDocument) -> bool:
    """Reviewers and the approver (object permissions) comment; nobody else."""
    return user.is_authenticated and (
        user.has_perm(perm_name(document, "review"), document)
        or user.has_perm(perm_name(document, "approve"), document)
    )


def may_approve(user: Any, document: ReviewedDocument) -> bool:
    return (
        user.is_authenticated
        and document.approver_id == user.pk
        and document.author_id != user.pk
        and user.has_perm(perm_name(document, "approve"), document)
    )


def _lock(document: ReviewedDocument) -> Any:
    return type(document).objects.select_for_update().get(pk=document.pk)  # type: ignore[attr-defined]


def _sign(document: ReviewedDocument, *, role: str, user: User, now: Any) -> None:
    from postmortems.models import SignOff

    SignOff.objects.update_or_create(
        content_type=ContentType.objects.get_for_model(document),
        object_id=document.pk,
        role=role,
        user=user,
        defaults={"signed_at": now, "revision": document.review_revision()},
    )


@transaction.atomic
def review_assign(
    *, document: ReviewedDocument, actor: User, reviewers: list[User], approver: User | None
) -> ReviewedDocument:
    """Name the reviewers and the approver: guardian object permissions, replaced as a whole.
    The approver is never the author (the database refuses it too)."""
    doc = _lock(document)
    if approver is not None and approver.pk == doc.author_id:
        raise ReviewRefused("The author cannot approve their own document.")
    review, approve = perm_name(doc, "review"), perm_name(doc, "approve")
    before = {u.pk for u in reviewers_of(doc)}
    wanted = {u.pk: u for u in reviewers}
    if before == set(wanted) and doc.approver_id == (approver.pk if approver else None):
        return doc
    for old in reviewers_of(doc):
        if old.pk not in wanted:
            remove_perm(review, old, doc)
    for user in wanted.values():
        if user.pk not in before:
            assign_perm(review, user, doc)
    if doc.approver_id and (approver is None or approver.pk != doc.approver_id):
        remove_perm(approve, User.objects.get(pk=doc.approver_id), doc)
    if approver is not None:
        assign_perm(approve, approver, doc)
    doc.approver = approver
    doc.save(update_fields=["approver"])
    names = ", ".join(u.get_username() for u in wanted.values()) or "nobody"
    doc.review_event(
        "assigned",
        actor,
        f"Reviewers: {names}; approver: {approver.get_username() if approver else 'nobody'}",
    )
    if doc.status == ReviewStatus.IN_REVIEW:  # people added while it is in review are asked now
        _request_review(doc, _review_team(doc))
    return doc


def _request_review(doc: ReviewedDocument, people: list[User], *, now: Any = None) -> None:
    """Ask each reviewer (and the approver) to look at the revision in review: the console inbox and
    their contact points through the outbox, in the step's transaction; once per person and revision
    (a repeated step asks nobody twice)."""
    from notify import services as notify

    link = settings.CONSOLE_URL.rstrip("/") + doc.review_url()
    revision = doc.review_revision()
    for user in people:
        role = "approve" if user.pk == doc.approver_id else "review"
        title = f"Please {role}: {doc} (revision {revision})"
        text = f"{doc} (revision {revision}) waits for you to {role} it: {link}"
        key = f"review-request:{doc._meta.label_lower}:{doc.pk}:{revision}:{user.pk}"
        notify.inbox_deliver(
            user=user,
            title=title,
            body=text,
            kind="reminder",
            incident_id=doc.review_incident_id(),
            dedupe_key=key,
            now=now,
        )
        notify.messages_enqueue(
            notify.person_outgoing(
                user=user,
                title=title,
                body=text,
                kind="reminder",
                incident_id=doc.review_incident_id(),
                dedupe_key=key,
            ),
            now=now,
        )


def _review_team(doc: ReviewedDocument) -> list[User]:
    people = {u.pk: u for u in reviewers_of(doc)}
    if doc.approver_id and doc.approver_id not in people:
        people[doc.approver_id] = User.objects.get(pk=doc.approver_id)
    return [u for pk, u in people.items() if pk != doc.author_id]


@transaction.atomic
def review_submit(*, document: ReviewedDocument, actor: User) -> ReviewedDocument:
    """Draft → in review; the author signs the revision submitted."""
    doc = _lock(document)
    if doc.status == ReviewStatus.IN_REVIEW:
        return doc
    if doc.status != ReviewStatus.DRAFT:
        raise ReviewRefused(
            f"Only a draft can be submitted (this one is {doc.get_status_display().lower()})."
        )
    if doc.approver_id is None:
        raise ReviewRefused("Assign an approver before submitting.")
    now = timezone.now()
    doc.status, doc.submitted_at = ReviewStatus.IN_REVIEW, now
    doc.save(update_fields=["status", "submitted_at"])
    if doc.author_id:
        _sign(doc, role="author", user=User.objects.get(pk=doc.author_id), now=now)
    doc.review_event("submitted", actor, f"Revision {doc.review_revision()} submitted for review")
    _request_review(doc, _review_team(doc), now=now)
    return doc


@transaction.atomic
def review_signoff(*, document: ReviewedDocument, actor: User) -> ReviewedDocument:
    """A reviewer signs the revision in review (the approval table's reviewer row)."""
    doc = _lock(document)
    if not actor.has_perm(perm_name(doc, "review"), doc):
        raise ReviewRefused("Only an assigned reviewer signs off.")
    if doc.status != ReviewStatus.IN_REVIEW:
        raise ReviewRefused("Only a document in review is signed off.")
    _sign(doc, role="reviewer", user=actor, now=timezone.now())
    doc.review_event("signed_off", actor, f"Revision {doc.review_revision()} signed off by reviewer")
    return doc


@transaction.atomic
def review_approve(*, document: ReviewedDocument, actor: User) -> ReviewedDocument:
    """In review → approved, by the assigned approver (never the author): the revision is frozen."""
    doc = _lock(document)
    if doc.status == ReviewStatus.APPROVED and doc.approved_revision == doc.review_revision():
        return doc
    if not may_approve(actor, doc):
        raise ReviewRefused("Only the assigned approver, who is not the author, approves.")
    if doc.status != ReviewStatus.IN_REVIEW:
        raise ReviewRefused("Only a document in review is approved.")
    now = timezone.now()
    doc.status, doc.approved_at, doc.approved_revision = ReviewStatus.APPROVED, now, doc.review_revision()
    doc.save(update_fields=["status", "approved_at", "approved_revision"])
    _sign(doc, role="approver", user=actor, now=now)
    doc.review_event("approved", actor, f"Revision {doc.approved_revision} approved")
    return doc


@transaction.atomic
def review_publish(*, document: ReviewedDocument, actor: User) -> ReviewedDocument:
    """Approved → published: the approved revision becomes the published one."""
    doc = _lock(document)
    if doc.status == ReviewStatus.PUBLISHED:
        return doc
    if doc.status != ReviewStatus.APPROVED:
        raise ReviewRefused("Only an approved document is published.")
    doc.status, doc.published_at = ReviewStatus.PUBLISHED, timezone.now()
    doc.published_revision = doc.approved_revision
    doc.save(update_fields=["status", "published_at", "published_revision"])
    doc.review_event("published", actor, f"Revision {doc.published_revision} published")
    return doc


def review_reopen_on_edit(doc: ReviewedDocument, actor: User) -> None:
    """Called by the document's save service (holding the row lock) when a new revision is written: an
    approved or published document goes back to draft and needs approval again; in review it goes back
    to draft too, since what the reviewers read changed."""
    if doc.status == ReviewStatus.DRAFT:
        return
    was = doc.get_status_display().lower()  # type: ignore[attr-defined]
    doc.status = ReviewStatus.DRAFT
    doc.save(update_fields=["status"])
    doc.review_event("reopened", actor, f"Edited while {was}: back to draft, to be approved again")


@transaction.atomic
def review_comment_add(*, document: ReviewedDocument, actor: User, section: str, body: str) -> Any:
    from postmortems.models import ReviewComment

    if not may_review(actor, document):
        raise ReviewRefused("Only the assigned reviewers and approver comment.")
    body = body.strip()
    if not body:
        raise ReviewRefused("The comment is empty.")
    return ReviewComment.objects.create(
        content_type=ContentType.objects.get_for_model(document),
        object_id=document.pk,
        section=section[:80],
        author=actor,
        body=body[:5000],
        revision=document.review_revision(),
        created_at=timezone.now(),
    )


@transaction.atomic
def review_comment_resolve(*, comment: Any, actor: User) -> Any:
    """Resolved by its writer, a reviewer, the approver or the document's author."""
    from postmortems.models import ReviewComment

    comment = ReviewComment.objects.select_for_update().get(pk=comment.pk)
    if comment.resolved_at is not None:
        return comment
    document = comment.document
    if not (may_review(actor, document) or document.author_id == actor.pk):
        raise ReviewRefused("Only the reviewers, the approver and the author resolve comments.")
    comment.resolved_at, comment.resolved_by = timezone.now(), actor
    comment.save(update_fields=["resolved_at", "resolved_by"])
    return comment


def signoffs_of(document: ReviewedDocument) -> list[Any]:
    from postmortems.models import SignOff

    order = {"author": 0, "reviewer": 1, "approver": 2}
    rows = SignOff.objects.filter(
        content_type=ContentType.objects.get_for_model(document), object_id=document.pk
    ).select_related("user")
    return sorted(rows, key=lambda s: (order.get(s.role, 9), s.signed_at))


def comments_of(document: ReviewedDocument) -> list[Any]:
    from postmortems.models import ReviewComment

    return list(
        ReviewComment.objects.filter(
            content_type=ContentType.objects.get_for_model(document), object_id=document.pk
        )
        .select_related("author", "resolved_by")
        .order_by("resolved_at", "created_at")
    )
