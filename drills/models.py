"""The drill programme (playbook section 9) as data: drill types with their recurrence, scenario and
targets, and each drill's occurrence, from scheduled to reviewed."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from dateutil import rrule as rfc5545
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

# The measured times of a drill, in order, with the labels the review shows.
MEASURES = {
    "acknowledge": "Time to acknowledge",
    "halt": "Time to halt",
    "confirmed_halt": "Time to confirmed halt",
    "approved_resume": "Time to approved resume",
    "recover": "Time to recover (resolved)",
}
SCENARIO_KINDS = ("alert", "killswitch")


def validate_rrule(value: str) -> None:
    try:
        rfc5545.rrulestr(value)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"Not an RRULE: {exc}") from exc


def validate_targets(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Targets are a mapping of measure to seconds.")
    stray = set(value) - set(MEASURES)
    if stray:
        raise ValidationError(f"Unknown measures {sorted(stray)}; known: {', '.join(MEASURES)}.")
    for name, seconds in value.items():
        if not isinstance(seconds, int) or seconds <= 0:
            raise ValidationError(f"Target {name}: a positive number of seconds.")


def validate_scenario(value: Any) -> None:
    if not isinstance(value, dict) or value.get("kind") not in SCENARIO_KINDS:
        raise ValidationError(f"A scenario has a kind, one of {', '.join(SCENARIO_KINDS)}.")
    signals = value.get("signals", [])
    if not isinstance(signals, list) or not all(isinstance(s, dict) and s.get("alertname") for s in signals):
        raise ValidationError("Scenario signals are a list of mappings, each with an alertname.")


class DrillType(models.Model):
    """One line of the playbook's drill table: what is drilled, how often (an RRULE), by whom, and
    the times the team should meet."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    rrule = models.CharField(
        max_length=300,
        validators=[validate_rrule],
        help_text="RFC 5545 recurrence rule, e.g. FREQ=MONTHLY;BYDAY=+1TU.",
    )
    starts_at = models.DateTimeField(help_text="The series' first occurrence (its time of day counts too).")
    duration_minutes = models.PositiveIntegerField(default=60)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    participants = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="drill_types")
    scenario = models.JSONField(
        default=dict,
        validators=[validate_scenario],
        help_text="kind (alert or killswitch), incident_type (slug), severity (1-4), title, and "
        "signals: [{alertname, service, severity}] injected through alert routing.",
    )
    targets = models.JSONField(default=dict, blank=True, validators=[validate_targets])
    grace_days = models.PositiveIntegerField(default=7)
    enabled = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def recurrence(self) -> rfc5545.rrule:
        rule = rfc5545.rrulestr(self.rrule, dtstart=self.starts_at)
        assert isinstance(rule, rfc5545.rrule)
        return rule

    @property
    def period(self) -> timedelta:
        """The longest gap between the series' first occurrences: a month, a quarter, half a year."""
        first = list(self.recurrence()[:4]) if self.rrule else []
        gaps = [b - a for a, b in itertools.pairwise(first)]
        return max(gaps, default=timedelta(days=365))

    @property
    def frequency(self) -> str:
        rule = self.recurrence()
        freq, interval = rule._freq, rule._interval
        names = {
            (1, 1): "Monthly",
            (1, 3): "Quarterly",
            (1, 6): "Semi-annual",
            (0, 1): "Yearly",
            (2, 1): "Weekly",
        }
        return names.get((freq, interval), f"Every {self.period.days} days")

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)


class Status(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ANNOUNCED = "announced", "Announced"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


UPCOMING = (Status.SCHEDULED, Status.ANNOUNCED)


class Drill(models.Model):
    """One occurrence of a drill type: generated from its RRULE (keyed by the rule's time, so the
    generator never makes it twice and moving it leaves the series alone) or scheduled by hand."""

    drill_type = models.ForeignKey(DrillType, on_delete=models.PROTECT, related_name="drills")
    original_at = models.DateTimeField(
        help_text="The series' time for this occurrence (or as first scheduled)."
    )
    scheduled_for = models.DateTimeField()
    moved = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    announced_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incident = models.OneToOneField(
        "incidents.Incident", null=True, blank=True, on_delete=models.PROTECT, related_name="drill"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The review: measured seconds (a snapshot at completion), findings, proposed playbook changes.
    measured = models.JSONField(default=dict, blank=True)
    findings = models.TextField(blank=True)
    playbook_proposal = models.TextField(blank=True)
    playbook_proposal_url = models.URLField(blank=True)

    class Meta:
        ordering = ["scheduled_for"]
        permissions = [("run_drill", "Start and take part in drills"), ("review_drill", "Review drills")]
        constraints = [
            models.UniqueConstraint(fields=["drill_type", "original_at"], name="drill_once_per_series_time"),
            models.CheckConstraint(condition=models.Q(status__in=Status.values), name="drill_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "scheduled_for"], name="drill_due")]

    def __str__(self) -> str:
        return f"{self.drill_type} {self.scheduled_for:%Y-%m-%d %H:%M}"

    @property
    def ends_at(self) -> Any:
        return self.scheduled_for + self.drill_type.duration

    @property
    def is_upcoming(self) -> bool:
        return self.status in UPCOMING
