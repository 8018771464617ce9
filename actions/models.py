"""Action items: follow-up work that outlives the incident it came from (a fix, a runbook change, an
alert to add), whether raised during the incident, in its post-mortem or in a drill's review."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident


class Origin(models.TextChoices):
    INCIDENT = "incident", "Incident"
    POSTMORTEM = "postmortem", "Post-mortem"
    DRILL = "drill", "Drill"


class ItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won't do"


# Still to be done: what the overdue flag, the reminders and "open first" consider.
ACTIVE_STATUSES = (ItemStatus.OPEN, ItemStatus.IN_PROGRESS)
CLOSED_STATUSES = (ItemStatus.DONE, ItemStatus.WONT_DO)
validate_tracker_url = URLValidator(schemes=["http", "https"])


class ActionItem(models.Model):
    # Every item hangs off an incident: a post-mortem belongs to its incident, a drill runs as one.
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="action_items")
    origin = models.CharField(max_length=12, choices=Origin.choices, default=Origin.INCIDENT)
    title = models.CharField(max_length=300)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="action_items",
    )
    due = models.DateField(null=True, blank=True)
    tracker_url = models.URLField(
        max_length=500, blank=True, validators=[validate_tracker_url], help_text="The ticket, if any."
    )
    status = models.CharField(max_length=12, choices=ItemStatus.choices, default=ItemStatus.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The due date a reminder was sent for: one reminder per due date; a new due date may get its own.
    reminded_due = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["due", "pk"]
        indexes = [
            # The overdue sweep and the overdue counts read only items still to be done.
            models.Index(
                fields=["due"],
                name="actionitem_overdue",
                condition=Q(status__in=["open", "in_progress"], due__isnull=False),
            ),
            models.Index(fields=["owner", "status"], name="actionitem_owner"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ItemStatus.values), name="actionitem_status_valid"),
            models.CheckConstraint(condition=Q(origin__in=Origin.values), name="actionitem_origin_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.incident.reference})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def overdue_on(self, today: date) -> bool:
        return self.is_active and self.due is not None and self.due < today

    @property
    def is_overdue(self) -> bool:
        """Still to be done and its due date has passed (in the console's time zone)."""
        return self.overdue_on(timezone.localdate())
