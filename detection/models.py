"""What the console watches (services, Prometheus rules) and what it heard (signals)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from detection.outbound import check_url, validate_timeout


class Source(models.TextChoices):
    HEALTH = "health", "Health check"
    PROMETHEUS = "prometheus", "Prometheus rule"
    ALERTMANAGER = "alertmanager", "Alertmanager"
    GRAFANA = "grafana", "Grafana"


class SignalStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Signal(models.Model):
    """One received alert state. (source, dedup_key) is unique: a duplicate delivery changes nothing.
    Stored first, routed to its group's incident afterwards (routed_at)."""

    source = models.CharField(max_length=20, choices=Source.choices)
    dedup_key = models.CharField(max_length=300, help_text="fingerprint|startsAt|status")
    group_key = models.CharField(max_length=300, help_text="Which incident it belongs to.")
    fingerprint = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=SignalStatus.choices)
    severity = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    component = models.CharField(max_length=80, blank=True, help_text="The affected service, if named.")
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    links = models.JSONField(default=list, blank=True, help_text="Only http(s) URLs.")
    incident_type = models.CharField(
        max_length=40,
        blank=True,
        help_text="The incident type its source named (slug): a check's or rule's, or an alert's label.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    routed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it reached its incident's timeline (empty: still waiting)."
    )
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="signals"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "dedup_key"], name="signal_dedup")]
        indexes = [
            models.Index(fields=["incident", "-received_at"], name="signal_by_incident"),
            models.Index(fields=["-received_at"], name="signal_recent"),
            models.Index(fields=["id"], condition=Q(routed_at__isnull=True), name="signal_unrouted"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.status} {self.title}"


class SignalGroup(models.Model):
    """One row per grouping key: its lock serialises signals of a group; it names the open incident."""

    key = models.CharField(max_length=300, unique=True)
    incident = models.ForeignKey("incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return self.key


class CheckKind(models.TextChoices):
    HTTP_JSON = "http_json", "HTTP, judge the JSON body"
    TCP = "tcp", "TCP connect"
    NONE = "none", "Not checked (process checks only)"


class Judge(models.TextChoices):
    STATUS = "status", "status is ok/healthy"
    WS = "ws", "cdb_ws: status healthy, ws_connected and redis_connected true"


class Health(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    UP = "up", "Up"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"


class MonitoredService(models.Model):
    name = models.CharField(max_length=80, unique=True)
    url = models.CharField(max_length=300, blank=True, help_text="http(s) URL, or host:port for TCP.")
    check_kind = models.CharField(max_length=20, choices=CheckKind.choices, default=CheckKind.HTTP_JSON)
    judge = models.CharField(max_length=20, choices=Judge.choices, default=Judge.STATUS)
    core = models.BooleanField(default=False, help_text="On the core trading path (down → SEV-1).")
    incident_type = models.ForeignKey(
        "incidents.IncidentType",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The type its incidents open with (empty: Other).",
    )
    enabled = models.BooleanField(default=True)
    timeout = models.FloatField(
        default=3.0, validators=[validate_timeout], help_text="Seconds, at most DETECTION_MAX_TIMEOUT."
    )
    # Current (damped) state and the counters that damp it.
    state = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    failures = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_detail = models.CharField(
        max_length=300, blank=True, help_text="The verdict, in the console's words."
    )
    last_reply = models.CharField(
        max_length=300, blank=True, help_text="What the service answered (shown to leads and above)."
    )
    # Checks recorded by result, for /metrics (results themselves are pruned; these only grow).
    checks_up = models.PositiveBigIntegerField(default=0)
    checks_degraded = models.PositiveBigIntegerField(default=0)
    checks_down = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-core", "name"]
        permissions = [("view_health_reply", "See what checked services answered")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The URL must name a host the console may reach (DETECTION_ALLOWED_HOSTS)."""
        if self.check_kind == CheckKind.NONE or not self.url:
            return
        try:
            check_url(self.url)
        except ValueError as exc:
            raise ValidationError({"url": str(exc)}) from exc


class HealthResult(models.Model):
    """One check, kept compactly; old rows are pruned (settings.HEALTH_RESULTS_KEEP per service)."""

    service = models.ForeignKey(MonitoredService, on_delete=models.CASCADE, related_name="results")
    checked_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Health.choices)
    latency_ms = models.FloatField(null=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["service", "-checked_at"], name="health_by_service")]

    def __str__(self) -> str:
        return f"{self.service_id} {self.status}"


class Comparison(models.TextChoices):
    GT = ">", ">"
    GE = ">=", "≥"
    LT = "<", "<"
    LE = "<=", "≤"
    EQ = "==", "="
    NE = "!=", "≠"


class RuleState(models.TextChoices):
    INACTIVE = "inactive", "Inactive"
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    ERROR = "error", "Error"


class RulePurpose(models.TextChoices):
    ALERT = "alert", "Alert: opens or joins an incident"
    RECOVERY = "recovery", "Recovery: must not fire before an incident resolves (playbook 7)"


class PrometheusRule(models.Model):
    name = models.CharField(max_length=100, unique=True)
    purpose = models.CharField(max_length=10, choices=RulePurpose.choices, default=RulePurpose.ALERT)
    expr = models.TextField(help_text="PromQL, evaluated as an instant query.")
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField(default=0)
    for_seconds = models.PositiveIntegerField(default=0)
    severity = models.PositiveSmallIntegerField(default=3)
    group = models.CharField(
        max_length=100,
        blank=True,
        help_text=(
            "Join this signal group's incident instead of the rule's own (e.g. killswitch:production); "
            "{label} takes the offending series' label (health:{job}: that service's health incident)."
        ),
    )
    incident_type = models.ForeignKey(
        "incidents.IncidentType",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The type its incidents open with (empty: Other).",
    )
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=RuleState.choices, default=RuleState.INACTIVE)
    pending_since = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["severity", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(severity__gte=1, severity__lte=4), name="rule_severity")
        ]

    def __str__(self) -> str:
        return self.name


class SnapshotMoment(models.TextChoices):
    DECLARED = "declared", "At declaration"
    RESOLVED = "resolved", "At resolution"
    REQUESTED = "requested", "On request"


class StatusSnapshotRequest(models.Model):
    """A CDB `/status` snapshot the console owes an incident, stored in the transaction of the change
    that calls for it (declared, resolved, or a person's request) and taken by a worker: woken at once
    or found by the periodic sweep, so a broker or worker outage delays a snapshot and loses none.
    A worker claims a request with a lease; the timeline row is written and the request closed in
    one transaction under its row lock, so a request makes at most one row however often it is run."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="status_snapshot_requests"
    )
    moment = models.CharField(max_length=20, choices=SnapshotMoment.choices)
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    leased_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["requested_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "moment"],
                condition=~Q(moment="requested"),
                name="status_snapshot_once_per_moment",
            ),
            models.UniqueConstraint(
                fields=["incident"],
                condition=Q(moment="requested", done_at__isnull=True),
                name="status_snapshot_one_pending_request",
            ),
        ]
        indexes = [
            models.Index(
                fields=["requested_at"], condition=Q(done_at__isnull=True), name="status_snapshots_pending"
            )
        ]

    def __str__(self) -> str:
        return f"INC-{self.incident_id} {self.moment} snapshot"
