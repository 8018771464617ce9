from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Severity(models.IntegerChoices):
    SEV1 = 1, "SEV-1"
    SEV2 = 2, "SEV-2"
    SEV3 = 3, "SEV-3"
    SEV4 = 4, "SEV-4"


class Status(models.TextChoices):
    TRIAGE = "triage", "Triage"
    INVESTIGATING = "investigating", "Investigating"
    MITIGATING = "mitigating", "Mitigating"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = (Status.TRIAGE, Status.INVESTIGATING, Status.MITIGATING, Status.MONITORING)


class ChecklistKind(models.TextChoices):
    TRIAGE = "triage", "Triage checklist"
    RUNBOOK = "runbook", "Runbook"
    PRE_RECOVERY = "pre_recovery", "Pre-recovery checklist"
    RECOVERY = "recovery", "Recovery steps"


class EventKind(models.TextChoices):
    DECLARED = "declared", "Declared"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    STATUS_CHANGED = "status_changed", "Status changed"
    SEVERITY_CHANGED = "severity_changed", "Severity changed"
    TYPE_CHANGED = "type_changed", "Type changed"
    COMMANDER_ASSIGNED = "commander_assigned", "Commander assigned"
    NOTE = "note", "Note"
    CHECKLIST_ITEM = "checklist_item", "Checklist"
    EDITED = "edited", "Edited"
    SLA_BREACHED = "sla_breached", "Response SLA breached"
    SIGNAL = "signal", "Alert or signal"


# --- The playbook as data (loaded from incidents/data/playbook.yaml, editable in admin) ---


class SeverityLevel(models.Model):
    level = models.PositiveSmallIntegerField(choices=Severity.choices, unique=True)
    name = models.CharField(max_length=40)
    description = models.CharField(max_length=300)
    response_minutes = models.PositiveIntegerField(help_text="Detection to acknowledgement.")
    examples = models.JSONField(default=list, blank=True)
    # The severity's rules, read live: an edit here changes what the console allows at once.
    kill_switch_default = models.BooleanField(
        default=False,
        help_text="Playbook default: activate the kill switch (the page and the tree advise it).",
    )
    commander_required = models.BooleanField(
        default=False, help_text="An incident commander before the incident leaves triage."
    )
    pre_recovery_required = models.BooleanField(
        default=False,
        help_text="The pre-recovery checklist complete (or a lead's recorded override) before resolving.",
    )
    monitoring_minutes = models.PositiveIntegerField(
        default=30,
        help_text="An incident that enters monitoring (a resume) stays there this long before it may "
        "resolve without a lead's override; a re-trigger sends it back to mitigating.",
    )

    class Meta:
        ordering = ["level"]

    def __str__(self) -> str:
        return f"{self.get_level_display()} {self.name}"

    @property
    def response_time(self) -> timedelta:
        return timedelta(minutes=self.response_minutes)

    @classmethod
    def for_level(cls, level: int) -> SeverityLevel:
        """The playbook's row for `level`, or, when the playbook data is not loaded, the playbook's
        own figures (unsaved): the rules never silently relax because a table is empty."""
        return cls.objects.filter(level=level).first() or cls.fallback(level)

    @classmethod
    def fallback(cls, level: int) -> SeverityLevel:
        minutes, strict = PLAYBOOK_LEVELS[level]
        return cls(
            level=level,
            name=Severity(level).label,
            response_minutes=minutes,
            kill_switch_default=strict,
            commander_required=strict,
            pre_recovery_required=strict,
        )


# The playbook's figures (response minutes, SEV-1/SEV-2 strictness), used only without its data.
PLAYBOOK_LEVELS = {1: (15, True), 2: (60, True), 3: (240, False), 4: (1440, False)}


class IncidentType(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    playbook_section = models.CharField(max_length=10, blank=True)
    kill_switch_reason = models.CharField(
        max_length=30, blank=True, help_text="CDB reason if the runbook halts."
    )
    runbook_steps = models.JSONField(default=list, blank=True)
    alert_names = models.JSONField(
        default=list,
        blank=True,
        help_text="Alert names (Alertmanager's alertname, Grafana's rule title) that open this type.",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Checklist(models.Model):
    """A playbook checklist template; incidents copy its items when they start."""

    kind = models.CharField(max_length=20, choices=ChecklistKind.choices, unique=True)
    title = models.CharField(max_length=80)
    items = models.JSONField(default=list)
    checks = models.JSONField(
        default=dict,
        blank=True,
        help_text='Items the console checks itself: {"item text": "fact name"} (incidents.facts).',
    )

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.title


class PlaybookVersion(models.Model):
    """One adopted state of the whole playbook (every section, those of other apps included).
    Immutable: a change is a new version (incidents.playbook.playbook_adopt), never an edit."""

    number = models.PositiveIntegerField(unique=True)
    document = models.JSONField()
    yaml = models.TextField(help_text="The document as YAML, as the version pages show and diff it.")
    note = models.TextField(blank=True)
    source = models.CharField(max_length=60, help_text='"file", "proposal:<id>", "admin"…')
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [models.CheckConstraint(condition=Q(number__gte=1), name="playbook_version_positive")]
        permissions = [("review_playbook", "Record the playbook's quarterly review")]

    def __str__(self) -> str:
        return f"Playbook v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("A playbook version is never changed: adopt a new one (incidents.playbook).")
        super().save(*args, **kwargs)

    @property
    def source_proposal_id(self) -> int | None:
        """The id of the reviewed proposal this version was adopted from (source "proposal:<id>")."""
        kind, _, rest = self.source.partition(":")
        return int(rest) if kind == "proposal" and rest.isdigit() else None


class PlaybookReview(models.Model):
    """A quarterly review that found nothing to change: it moves the next review's due date like a
    new version does."""

    version = models.ForeignKey(PlaybookVersion, on_delete=models.PROTECT, related_name="reviews")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-reviewed_at"]

    def __str__(self) -> str:
        return f"Review of v{self.version_id} on {self.reviewed_at:%Y-%m-%d}"


class PlaybookReviewReminder(models.Model):
    """A review reminder sent (claimed) for one due date: inserting the row is the claim, in the
    transaction that puts the reminder in the outbox, so each due date reminds once."""

    due = models.DateField(unique=True)
    sent_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Review reminder for {self.due:%Y-%m-%d}"


# --- Incidents ---


class Incident(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    affected_components = models.JSONField(default=list, blank=True)
    incident_type = models.ForeignKey(IncidentType, on_delete=models.PROTECT, related_name="incidents")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRIAGE)
    decision_answers = models.JSONField(null=True, blank=True)
    is_drill = models.BooleanField(default=False)

    detected_at = models.DateTimeField()
    declared_at = models.DateTimeField(auto_now_add=True)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ack_due_at = models.DateTimeField(help_text="Detection plus the severity's response time.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="commanded_incidents",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Entering monitoring starts the severity's window (playbook 7.4): resolving before it ends needs
    # a lead's override; a re-trigger (a halt, a firing alert) sends the incident back to mitigating.
    monitoring_until = models.DateTimeField(null=True, blank=True)
    war_room_url = models.URLField(
        max_length=500, blank=True, help_text="The video call of the responders (the playbook's war room)."
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    # Id of the latest timeline event: every change writes one, so this is the page's version.
    version = models.BigIntegerField(default=0)
    # The playbook in force when the incident was declared (its checklists and runbook were copied
    # from it); empty for incidents older than playbook versions.
    playbook_version = models.ForeignKey(
        PlaybookVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="incidents"
    )

    class Meta:
        permissions = [
            ("act_on_incident", "Acknowledge, change status and severity, assign commander, add notes"),
            ("override_prerecovery", "Resolve without a complete pre-recovery checklist"),
        ]
        indexes = [
            models.Index(fields=["status", "severity", "detected_at"], name="incident_board"),
            models.Index(
                fields=["ack_due_at"],
                name="incident_sla_due",
                condition=Q(acknowledged_at__isnull=True, sla_breached_at__isnull=True),
            ),
            models.Index(fields=["-detected_at"], name="incident_recent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__gte=1, severity__lte=4), name="incident_severity_range"
            ),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="incident_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    @property
    def reference(self) -> str:
        return f"INC-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def level(self) -> SeverityLevel:
        """The playbook's rules for this incident's severity, read once per instance (and again
        after a severity change): what a request renders and a service checks agree."""
        cached = self.__dict__.get("_level")
        if cached is None or cached.level != self.severity:
            cached = self.__dict__["_level"] = SeverityLevel.for_level(self.severity)
        return cached

    @property
    def kill_switch_recommended(self) -> bool:
        return self.level.kill_switch_default

    @property
    def commander_missing(self) -> bool:
        return self.commander_id is None and self.level.commander_required


class IncidentChecklistItem(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="checklist_items")
    kind = models.CharField(max_length=20, choices=ChecklistKind.choices)
    position = models.PositiveSmallIntegerField()
    text = models.CharField(max_length=300)
    # The fact the console checks for this item (incidents.facts); empty: a person ticks it.
    fact_name = models.CharField(max_length=40, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # The fact's verdict now, when a selector attached it (incidents.facts).
    fact: Any = None

    class Meta:
        ordering = ["kind", "position"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "kind", "position"], name="checklist_item_unique"),
        ]

    def __str__(self) -> str:
        return self.text

    @property
    def done(self) -> bool:
        return self.done_at is not None

    @property
    def satisfied(self) -> bool:
        """Ticked, or, for an item the console checks itself, its fact true (attached by selectors)."""
        if self.fact_name:
            return self.fact is not None and self.fact.ok is True
        return self.done


class TimelineEvent(models.Model):
    """Append-only record of every change to an incident. Written only by incidents.timeline."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    # No choices: each app names its own kinds (incidents.EventKind, killswitch, detection, ...) and
    # renders them with its own template, templates/timeline/<kind>.html.
    kind = models.CharField(max_length=30)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["incident", "-id"], name="timeline_by_incident")]

    def __str__(self) -> str:
        return f"{self.label} {self.old_value} → {self.new_value}"

    @property
    def label(self) -> str:
        from incidents.timeline import kind_label

        return kind_label(self.kind)

    @property
    def templates(self) -> tuple[str, str]:
        """How the incident page renders this row: its kind's template, else the plain default."""
        return (f"timeline/{self.kind}.html", "timeline/default.html")
