"""The playbook's escalation matrix (section 4) as data, and each incident's chain of steps."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from incidents.models import Severity


class Target(models.TextChoices):
    ONCALL_ENGINEER = "oncall_engineer", "On-call engineer"
    TECH_LEAD = "tech_lead", "Tech lead"
    EXECUTIVE = "executive", "Executive (CTO)"
    ASSIGNED_ENGINEER = "assigned_engineer", "Assigned engineer (the commander, else the on-call engineer)"
    ENGINEERING_QUEUE = "engineering_queue", "Engineering queue (its channel)"


class StepAction(models.TextChoices):
    PAGE = "page", "Page (needs an acknowledgement)"
    NOTIFY = "notify", "Notify"


class Until(models.TextChoices):
    ACKNOWLEDGED = "acknowledged", "Skipped once acknowledged"
    RESOLVED = "resolved", "Skipped once resolved"


class PolicyStep(models.Model):
    """One row of the matrix: for incidents of `severity`, `after_minutes` from opening, reach `target`."""

    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    position = models.PositiveSmallIntegerField()
    after_minutes = models.PositiveIntegerField()
    target = models.CharField(max_length=20, choices=Target.choices)
    action = models.CharField(max_length=10, choices=StepAction.choices, default=StepAction.PAGE)
    until = models.CharField(max_length=15, choices=Until.choices, default=Until.ACKNOWLEDGED)

    class Meta:
        ordering = ["severity", "position"]
        constraints = [models.UniqueConstraint(fields=["severity", "position"], name="policy_step_unique")]

    def __str__(self) -> str:
        return f"SEV-{self.severity} +{self.after_minutes} min: {self.get_action_display()} {self.target}"


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class Step(models.Model):
    """One step of one incident's chain, copied from the matrix when the chain (re)starts.
    `generation` counts the chain's starts: a reopen or a raised severity starts a new one."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="escalation_steps"
    )
    generation = models.PositiveSmallIntegerField()
    position = models.PositiveSmallIntegerField()
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    after_minutes = models.PositiveIntegerField()
    target = models.CharField(max_length=20, choices=Target.choices)
    action = models.CharField(max_length=10, choices=StepAction.choices)
    until = models.CharField(max_length=15, choices=Until.choices)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True, help_text="Who was reached, or why it was skipped.")

    class Meta:
        ordering = ["incident", "generation", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "generation", "position"], name="escalation_step_unique"
            )
        ]
        indexes = [models.Index(fields=["due_at", "id"], name="escalation_due", condition=Q(state="pending"))]

    def __str__(self) -> str:
        return f"incident {self.incident_id} step {self.generation}.{self.position} ({self.state})"
