"""On-call: who answers for each of the playbook's roles, when. Rotations hand a role from member to
member at a fixed local time; overrides let someone cover a stretch. People's contact points live with
notifications (notify.ContactPoints)."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q


class Duty(models.TextChoices):
    """The roles the playbook's escalation matrix pages (section 4)."""

    ONCALL_ENGINEER = "oncall_engineer", "On-call engineer"
    TECH_LEAD = "tech_lead", "Tech lead"
    EXECUTIVE = "executive", "Executive (CTO)"


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin).")


class Rotation(models.Model):
    """Members take turns holding a duty. Shift k starts at the first handoff plus k shift lengths,
    counted in the rotation's local wall-clock time: a weekly handoff stays at 09:00 across DST."""

    name = models.CharField(max_length=80, unique=True)
    duty = models.CharField(max_length=20, choices=Duty.choices)
    time_zone = models.CharField(max_length=60, default="UTC", validators=[validate_time_zone])
    effective_from = models.DateField(help_text="The rotation covers its duty from this date on.")
    handoff_time = models.TimeField(help_text="Local time of each handoff.")
    handoff_weekday = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        choices=[
            (0, "Monday"),
            (1, "Tuesday"),
            (2, "Wednesday"),
            (3, "Thursday"),
            (4, "Friday"),
            (5, "Saturday"),
            (6, "Sunday"),
        ],
        help_text="Weekday of the first handoff (empty: the effective date itself).",
    )
    shift_hours = models.PositiveIntegerField(default=168, help_text="168 weekly, 24 daily, 12 …")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["duty", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(shift_hours__gte=1, shift_hours__lte=24 * 28), name="rotation_shift_hours"
            ),
            models.CheckConstraint(
                condition=Q(handoff_weekday__isnull=True) | Q(handoff_weekday__lte=6), name="rotation_weekday"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RotationMember(models.Model):
    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["rotation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rotation", "position"], name="rotation_member_position"),
            models.UniqueConstraint(fields=["rotation", "user"], name="rotation_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} #{self.position} in {self.rotation}"


class Override(models.Model):
    """`user` holds the rotation's duty from `starts_at` to `ends_at`; when `replaces` is set, only
    while that person would have been on call (covering one person's shift, not anyone's)."""

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    replaces = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["rotation", "ends_at"], name="override_by_rotation")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="override_ends_after_start")
        ]

    def __str__(self) -> str:
        return f"{self.user} covers {self.rotation} {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%H:%M}"


class CalendarFeed(models.Model):
    """A secret link to someone's (or a rotation's) shifts as an ICS calendar. Only a digest of the
    token is stored; revoking is for good."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rotation = models.ForeignKey(Rotation, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    token_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"calendar feed of {self.rotation or self.user}"
