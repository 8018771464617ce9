"""The playbook's section 5 as data: where each severity's messages go, how often an update is due,
and the message templates; plus each incident's update clock."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from incidents.models import Severity


class TemplateKind(models.TextChoices):
    NOTICE = "notice", "Short notice (declared or detected)"
    INITIAL = "initial", "Initial alert"
    UPDATE = "update", "Status update"
    RESOLUTION = "resolution", "Resolution"
    SUMMARY = "summary", "Post-incident summary (email)"


# The templates a commander picks in the compose panel.
COMPOSABLE = (TemplateKind.INITIAL, TemplateKind.UPDATE, TemplateKind.RESOLUTION)


class Route(models.Model):
    """Where a severity's messages go (a notify channel name) and its status-update cadence."""

    severity = models.PositiveSmallIntegerField(choices=Severity.choices, unique=True)
    channel = models.SlugField(max_length=40)
    update_every_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="A status update is due this often while open (empty: never)."
    )

    class Meta:
        ordering = ["severity"]

    def __str__(self) -> str:
        return f"SEV-{self.severity} → {self.channel}"


class MessageTemplate(models.Model):
    kind = models.CharField(max_length=20, choices=TemplateKind.choices, unique=True)
    title = models.CharField(max_length=300)
    text = models.TextField(help_text="Django template syntax; see README for the variables.")

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.get_kind_display()


class Setting(models.Model):
    """Single values of the communication plan (e.g. the summary channel)."""

    name = models.SlugField(max_length=40, unique=True)
    value = models.CharField(max_length=200)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class UpdateClock(models.Model):
    """When an open incident's next status update is due, and the due time its commander was last
    reminded of (each due time reminds once)."""

    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.CASCADE, related_name="update_clock"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    reminded_for = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["due_at"], name="update_clock_due", condition=Q(due_at__isnull=False))
        ]

    def __str__(self) -> str:
        return f"next update of incident {self.incident_id} due {self.due_at}"
