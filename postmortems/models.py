from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from postmortems.review import ReviewedDocument, ReviewStatus


class Required(models.TextChoices):
    YES = "yes", "Required"
    OPTIONAL = "optional", "Optional"
    NO = "no", "No"


class Requirement(models.Model):
    """The playbook's post-mortem requirement of a severity (section 8), loaded from the playbook
    file's `postmortems` section and editable in admin: read live when an incident resolves."""

    severity = models.PositiveSmallIntegerField(unique=True)
    required = models.CharField(max_length=10, choices=Required.choices)
    deadline_hours = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["severity"]

    def __str__(self) -> str:
        return f"SEV-{self.severity}: {self.get_required_display()}"


class PostMortem(ReviewedDocument):
    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="postmortem")
    title = models.CharField(max_length=200)
    required = models.BooleanField(default=True)
    deadline = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    # Numbers of the Impact section: by hand, or from a CDB /status snapshot on the incident.
    orders_affected = models.PositiveIntegerField(null=True, blank=True)
    exposure_usd = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    # Computed from the kill-switch audit when the post-mortem is created (see prefill.halted).
    halted_seconds = models.PositiveIntegerField(default=0)
    halted_detail = models.JSONField(default=list, blank=True)
    # The timeline as generated from the incident's, kept as it was; the document holds the edited copy.
    generated_timeline = models.TextField(blank=True)
    current_revision = models.PositiveIntegerField(default=0)
    # Deadline sweep claims: each reminder once (see services.deadlines_sweep).
    reminded_at = models.DateTimeField(null=True, blank=True)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta(ReviewedDocument.Meta):
        permissions = [
            ("review_postmortem", "Review and comment on a post-mortem"),
            ("approve_postmortem", "Approve a post-mortem"),
            ("assign_postmortem", "Assign a post-mortem's reviewers and approver"),
        ]
        indexes = [
            models.Index(
                fields=["deadline"], name="postmortem_due", condition=~Q(status=ReviewStatus.PUBLISHED)
            )
        ]

    def __str__(self) -> str:
        return f"Post-mortem of INC-{self.incident_id}"

    def review_revision(self) -> int:
        return self.current_revision

    def review_incident_id(self) -> int | None:
        return self.incident_id

    def review_event(self, kind: str, actor: object, text: str) -> None:
        from postmortems import services

        services.record_event(self, kind=kind, actor=actor, text=text)


class PostMortemRevision(models.Model):
    """One saved version of the whole document (Markdown, in the template's layout). Rows are never
    changed: an explicit save adds one; autosaves go to the writer's `Draft`."""

    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    body = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    base = models.PositiveIntegerField(
        null=True, blank=True, help_text="The revision this one was edited from."
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["postmortem", "number"], name="postmortem_revision_number_unique")
        ]

    def __str__(self) -> str:
        return f"r{self.number}"


class Draft(models.Model):
    """A person's unsaved work on a post-mortem, overwritten by each autosave (one row per person),
    with the revision it was started from. An explicit save turns it into a revision."""

    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    base = models.PositiveIntegerField()
    body = models.TextField()
    saved_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["postmortem", "user"], name="postmortem_draft_unique")]

    def __str__(self) -> str:
        return f"Draft of user {self.user_id} on r{self.base}"


class SignOff(models.Model):
    """A row of a reviewed document's approval table: who signed which revision, as what, when."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    document = GenericForeignKey("content_type", "object_id")
    role = models.CharField(max_length=20)  # author, reviewer, approver
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField()
    revision = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "role", "user"], name="signoff_unique"
            )
        ]
        indexes = [models.Index(fields=["content_type", "object_id"], name="signoff_document")]

    def __str__(self) -> str:
        return f"{self.role} r{self.revision}"


class ReviewComment(models.Model):
    """A reviewer's comment on a section of a reviewed document; resolved when dealt with."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    document = GenericForeignKey("content_type", "object_id")
    section = models.CharField(max_length=80)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    revision = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["content_type", "object_id"], name="reviewcomment_document")]

    def __str__(self) -> str:
        return f"Comment on {self.section}"
