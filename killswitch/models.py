from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# The kind of the timeline rows kill-switch changes write (rendered by templates/timeline/kill_switch.html).
TIMELINE_KIND = "kill_switch"


class Action(models.TextChoices):
    ACTIVATED = "activated", "Activated (halt)"
    RESUME_REQUESTED = "resume_requested", "Resume requested"
    RESUME_APPROVED = "resume_approved", "Resume approved (deactivated)"
    RESUME_REJECTED = "resume_rejected", "Resume rejected"
    RESUME_EXPIRED = "resume_expired", "Resume request expired"
    RESUME_VOIDED = "resume_voided", "Resume request void"
    RESUME_FAILED = "resume_failed", "Resume failed (halted again)"
    EXTERNAL_CHANGE = "external_change", "External change"
    PERMISSION_GRANTED = "permission_granted", "Permission granted"
    PERMISSION_REVOKED = "permission_revoked", "Permission revoked"
    CREDENTIALS_CHANGED = "credentials_changed", "Password of a power holder changed"
    EXTERNAL_PERMISSION_CHANGE = "external_permission_change", "Permission changed outside the console"


class TargetState(models.Model):
    """The last state the console observed for a configured target; its row lock serialises changes."""

    target = models.CharField(max_length=40, unique=True)
    condition = models.CharField(max_length=20, default="unknown")
    reason = models.CharField(max_length=40, blank=True)
    message = models.TextField(blank=True)
    activated_at = models.CharField(max_length=40, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    fingerprint = models.TextField(blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.CharField(max_length=150, blank=True, help_text="Console user, or 'external'.")

    class Meta:
        permissions = [
            ("activate_killswitch", "Halt trading (activate the kill switch)"),
            ("request_resume", "Request resuming trading"),
            ("approve_resume", "Approve or reject a resume request"),
        ]

    def __str__(self) -> str:
        return f"{self.target}: {self.condition}"


class ResumeStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved, trading resumed"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    VOID = "void", "Void"
    FAILED = "failed", "Failed, trading halted again"


class ResumeRequest(models.Model):
    target = models.CharField(max_length=40)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    incident = models.ForeignKey("incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL)
    pre_recovery = models.JSONField(default=list, blank=True, help_text="The checklist as it stood.")
    halt = models.JSONField(
        default=dict,
        blank=True,
        help_text="The halt this request was filed for (see services.halt_of); another halt voids it.",
    )
    status = models.CharField(max_length=20, choices=ResumeStatus.choices, default=ResumeStatus.PENDING)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["target"], condition=Q(status="pending"), name="one_pending_resume_per_target"
            ),
            models.CheckConstraint(
                condition=~Q(decided_by=models.F("requested_by")), name="resume_never_self_approved"
            ),
        ]

    def __str__(self) -> str:
        return f"Resume {self.target} #{self.pk} ({self.status})"


class AuditRecord(models.Model):
    """Append-only, hash-chained record of every kill-switch change.

    The database refuses UPDATE and DELETE on this table (migration 0002). `seq` numbers the chain
    without gaps, and `digest` is an HMAC over the row and the previous row's digest, keyed by a
    secret outside the database: `manage.py killswitch verify-audit` finds the first row edited,
    deleted, swapped or forged.
    """

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150)
    actor_role = models.CharField(max_length=40, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    target = models.CharField(max_length=40, blank=True)
    state_before = models.JSONField(default=dict, blank=True)
    state_after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, help_text="Reason, justification or permission named.")
    request_id = models.BigIntegerField(null=True, blank=True)
    incident_id = models.BigIntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    prev_digest = models.CharField(max_length=64)
    digest = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        permissions = [("export_auditrecord", "Export the kill-switch audit")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target} by {self.actor_name}"


class SpooledChange(models.Model):
    """A spool entry already turned into its audit record (see killswitch/spool.py): an entry is
    recorded once, even if the spool could not be emptied after its record was committed."""

    entry_id = models.UUIDField(unique=True)
    audit_seq = models.BigIntegerField()
    recorded_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"spool entry {self.entry_id} → audit #{self.audit_seq}"


class AuditHead(models.Model):
    """One row: the chain's last seq and digest. Locked while a record is appended."""

    seq = models.BigIntegerField(default=0)
    digest = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head #{self.seq}"


class PowerHolding(models.Model):
    """The kill-switch permissions each user held at the last audited change: what the powers reconcile
    compares with who holds them now, to find changes no hook saw (queryset.update, raw SQL).

    Kept by killswitch.permissions_audit only, in the transaction of the audited change. Not a
    foreign key: the row outlives a deleted user until the deletion is audited.
    """

    user_id = models.BigIntegerField(unique=True)
    username = models.CharField(max_length=150)
    powers = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.username}: {', '.join(self.powers) or 'no kill-switch power'}"
