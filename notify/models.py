"""Messages leaving the console: channels (where), the outbox (what, and how far it got), people's
contact points, and the in-console inbox."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Channel(models.Model):
    """A named destination (Slack, Discord, Teams, email, a JSON webhook) as an Apprise URL.
    NOTIFY_CHANNELS can define channels too; a channel named there wins over a row here."""

    name = models.SlugField(max_length=40, unique=True)
    url = models.TextField(
        help_text="Apprise URL, e.g. slack://…, discord://…, msteams://…, mailto://…, json://…"
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ContactPoints(models.Model):
    """How a person is paged, besides the console's own inbox (which always gets the page)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact")
    email = models.EmailField(blank=True, help_text="Empty: the account's email address.")
    chat_handle = models.CharField(
        max_length=80, blank=True, help_text="Mentioned in the routed channel's page, e.g. @alice."
    )
    webhook_url = models.CharField(
        max_length=500, blank=True, help_text="A personal Apprise URL (e.g. a phone push service)."
    )

    def __str__(self) -> str:
        return f"contact points of {self.user}"


class MessageState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Failed, will retry"
    FAILED = "failed", "Failed, gave up"
    CANCELLED = "cancelled", "Cancelled"


DUE_STATES = (MessageState.QUEUED, MessageState.RETRYING)


class Address(models.TextChoices):
    CHANNEL = "channel", "Channel"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Personal webhook"


class Message(models.Model):
    """The outbox. A row is written in the transaction of the change that causes it, and delivered
    by workers: claimed (state sending, attempt counted) before the send, its result recorded after.
    """

    created_at = models.DateTimeField()
    kind = models.CharField(max_length=40, help_text="notice, page, update, resolution, summary, test…")
    address_kind = models.CharField(max_length=10, choices=Address.choices)
    address = models.CharField(max_length=500, help_text="Channel name, email address or Apprise URL.")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incident_id = models.BigIntegerField(null=True, blank=True)
    title = models.CharField(max_length=300)
    body = models.TextField()
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    state = models.CharField(max_length=10, choices=MessageState.choices, default=MessageState.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    possible_duplicate = models.BooleanField(
        default=False, help_text="A worker died while sending it; it was sent again (at-least-once)."
    )
    # Lower goes first: a page to a person is not queued behind a storm of channel posts.
    priority = models.PositiveSmallIntegerField(default=5)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["priority", "next_attempt_at", "id"],
                name="message_due",
                condition=Q(state__in=["queued", "retrying"]),
            ),
            models.Index(fields=["claimed_at"], name="message_sending", condition=Q(state="sending")),
            models.Index(fields=["incident_id", "-id"], name="message_by_incident"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.address} ({self.state})"

    @property
    def idempotency_key(self) -> str:
        return f"cdb-console-message-{self.pk}"


class InboxItem(models.Model):
    """A page or notice for one person, shown under the bell; reaches them with no chat configured."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox")
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=40)
    incident_id = models.BigIntegerField(null=True, blank=True)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="inbox_unread", condition=Q(read_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.title} for {self.user}"
