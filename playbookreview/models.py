"""A proposed change to the playbook, reviewed like a post-mortem (postmortems.review) and adopted as
the next playbook version when approved."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from postmortems.review import ReviewedDocument, ReviewStatus

# A proposal is never published: its approval adopts it, and it stays approved.
OPEN = (ReviewStatus.DRAFT, ReviewStatus.IN_REVIEW)


class PlaybookProposal(ReviewedDocument):
    """The whole playbook as its author wants it (`yaml`), written against `base_version`. Its review
    steps, sign-offs and comments are the post-mortem's; approving it adopts it (`adopted_version`)."""

    title = models.CharField(max_length=200)
    reason = models.TextField(
        help_text="Why the playbook should change: often a post-mortem's or drill's lesson."
    )
    postmortem = models.ForeignKey(
        "postmortems.PostMortem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="playbook_proposals",
    )
    drill = models.ForeignKey(
        "drills.Drill", null=True, blank=True, on_delete=models.SET_NULL, related_name="playbook_proposals"
    )
    base_version = models.ForeignKey(
        "incidents.PlaybookVersion",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The version this proposal was written against (moved by a rebase).",
    )
    yaml = models.TextField(help_text="The proposed playbook, whole, as YAML.")
    current_revision = models.PositiveIntegerField(default=1)
    adopted_version = models.OneToOneField(
        "incidents.PlaybookVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(ReviewedDocument.Meta):
        ordering = ["-pk"]
        permissions = [
            ("review_playbookproposal", "Review and comment on a playbook proposal"),
            ("approve_playbookproposal", "Approve a playbook proposal (adopting it)"),
        ]
        constraints = [
            *ReviewedDocument.Meta.constraints,
            # Only an approval adopts, and an adopted proposal stays approved (never edited back to
            # draft). The approval sets the status first and the version it adopted next, in one
            # transaction (services.proposal_approve).
            models.CheckConstraint(
                condition=Q(adopted_version__isnull=True) | Q(status=ReviewStatus.APPROVED),
                name="playbookproposal_adopted_is_approved",
            ),
        ]

    def __str__(self) -> str:
        return f"Playbook proposal #{self.pk}: {self.title}"

    def review_revision(self) -> int:
        return self.current_revision

    def review_event(self, kind: str, actor: object, text: str) -> None:
        from playbookreview import services

        services.record_event(self, kind=kind, actor=actor, text=text)


class PlaybookProposalRevision(models.Model):
    """One saved state of a proposal. Rows are never changed: each save (or rebase) adds one."""

    proposal = models.ForeignKey(PlaybookProposal, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    reason = models.TextField()
    yaml = models.TextField()
    base_version = models.ForeignKey("incidents.PlaybookVersion", on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["proposal", "number"], name="playbookproposal_revision_unique")
        ]

    def __str__(self) -> str:
        return f"r{self.number}"


class ProposalEvent(models.Model):
    """What happened to a proposal, in order (created, saved, assigned, submitted, approved, adopted,
    rebased…): the proposal page's activity. Written only by `services.record_event`."""

    proposal = models.ForeignKey(PlaybookProposal, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:40]}"
