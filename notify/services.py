"""The outbox: every message is stored in the transaction of the change that causes it, then delivered
by workers, retried with backoff, and given up after a limit, with its state kept for the incident page.

Delivery is at-least-once with a narrow window: a message is claimed (state `sending`, the attempt
counted and committed) before it is sent, and its result is recorded right after. A worker that dies
between the two leaves the message `sending`; once its lease runs out it is sent again, marked
`possible_duplicate`, with the same idempotency key (which webhook and email receivers can use to drop
the copy). A message is never sent twice for any other reason: a claim is a compare-and-set, and a
result is recorded only by the claim that sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from console.wakeup import Waker
from notify import delivery
from notify.models import DUE_STATES, Address, InboxItem, Message, MessageState

log = logging.getLogger(__name__)

MAX_TITLE = 300
wake_deliverer = Waker("notify.tasks.deliver_messages")

# Called with each batch's (message, state) outcomes once recorded: sent, retrying (first failure
# only) and failed. Apps above notify register here (comms writes them on the incident's timeline).
_outcome_listeners: list[Callable[[list[tuple[Message, str]]], None]] = []


def on_outcomes(listener: Callable[[list[tuple[Message, str]]], None]) -> None:
    _outcome_listeners.append(listener)


def _announce(outcomes: list[tuple[Message, str]]) -> None:
    reported = [(m, state) for m, state in outcomes if state != MessageState.RETRYING or m.attempts == 1]
    if not reported:
        return
    for listener in _outcome_listeners:
        try:
            listener(reported)
        except Exception:  # a report that fails must never undo a delivery
            log.exception("An outcome listener failed")


@dataclass(frozen=True)
class Outgoing:
    """One message to enqueue (see `messages_enqueue`)."""

    address_kind: str
    address: str
    title: str
    body: str
    kind: str
    incident_id: int | None = None
    recipient: User | None = None
    dedupe_key: str | None = None

    @property
    def priority(self) -> int:
        """Messages to a person (pages) leave before channel posts."""
        return 0 if self.recipient is not None else 5


def messages_enqueue(outgoing: list[Outgoing], *, now: datetime | None = None) -> list[Message]:
    """Store messages for delivery, in the caller's transaction (it must have one: the message and
    the change that causes it commit together, or neither does). A message whose dedupe key is already
    stored is skipped, so a repeated sweep never queues a message twice. Workers are woken on commit."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("messages_enqueue must run inside the transaction of the change it reports")
    if not outgoing:
        return []
    now = now or timezone.now()
    keys = [o.dedupe_key for o in outgoing if o.dedupe_key]
    known = (
        set(Message.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True))
        if keys
        else set()
    )
    rows = [_row(o, now) for o in outgoing if not (o.dedupe_key and o.dedupe_key in known)]
    try:
        with transaction.atomic():
            created = Message.objects.bulk_create(rows)
    except IntegrityError:
        # A concurrent enqueue stored one of the keys meanwhile: store the others one by one.
        created = []
        for row in rows:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
                created.append(row)
            except IntegrityError:
                continue
    if created:
        transaction.on_commit(wake_deliverer)
    return created


def message_enqueue(**fields: Any) -> Message | None:
    created = messages_enqueue([Outgoing(**fields)])
    return created[0] if created else None


def _row(o: Outgoing, now: datetime) -> Message:
    if o.address_kind not in Address.values:
        raise ValueError(f"unknown address kind {o.address_kind!r}")
    return Message(
        created_at=now,
        kind=o.kind,
        address_kind=o.address_kind,
        address=o.address[:500],
        recipient=o.recipient,
        incident_id=o.incident_id,
        title=o.title[:MAX_TITLE],
        body=o.body,
        dedupe_key=o.dedupe_key,
        state=MessageState.QUEUED,
        next_attempt_at=now,
        priority=o.priority,
    )


def person_outgoing(
    *,
    user: User,
    title: str,
    body: str,
    kind: str,
    incident_id: int | None = None,
    dedupe_key: str | None = None,
    points: Any = None,
) -> list[Outgoing]:
    """Messages to a person by their contact points: email (theirs, else the account's) and their
    personal webhook. The console inbox is separate (`inbox_deliver`): it needs no worker. Pass the
    person's `points` when already read (a sweep paging many)."""
    from notify.models import ContactPoints

    if points is None:
        points = ContactPoints.objects.filter(user=user).first()
    email = (points.email if points and points.email else "") or user.email
    outgoing = []
    if email:
        outgoing.append(
            Outgoing(
                Address.EMAIL,
                email,
                title,
                body,
                kind,
                incident_id,
                user,
                dedupe_key and f"{dedupe_key}:email",
            )
        )
    if points and points.webhook_url:
        outgoing.append(
            Outgoing(
                Address.WEBHOOK, points.webhook_url, title, body, kind, incident_id, user,
                dedupe_key and f"{dedupe_key}:webhook",
            )
        )  # fmt: skip
    return outgoing


def inbox_deliver(
    *,
    user: User,
    title: str,
    body: str = "",
    kind: str,
    incident_id: int | None = None,
    dedupe_key: str | None = None,
    now: datetime | None = None,
) -> InboxItem | None:
    """Put a page or notice in a person's console inbox, in the caller's transaction (exactly once
    per dedupe key). The inbox needs no worker: it is delivered when the change commits."""
    if dedupe_key and InboxItem.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    return InboxItem.objects.create(
        user=user,
        created_at=now or timezone.now(),
        kind=kind,
        incident_id=incident_id,
        title=title[:MAX_TITLE],
        body=body,
        dedupe_key=dedupe_key,
    )


def inbox_mark_read(*, user: User, item_ids: list[int] | None = None) -> int:
    """Mark the user's items read (all unread ones when no ids are given). Returns how many."""
    qs = InboxItem.objects.filter(user=user, read_at__isnull=True)
    if item_ids is not None:
        qs = qs.filter(pk__in=item_ids)
    return qs.update(read_at=timezone.now())


# --- Delivery -----------------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """Seconds before the next try: base * 2^(attempts-1), capped."""
    base = settings.NOTIFY_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(0, attempts - 1), settings.NOTIFY_RETRY_MAX_SECONDS))


def messages_release_stale(*, now: datetime | None = None) -> int:
    """Messages left `sending` by a worker that died: due again at once, flagged as possible duplicates."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.NOTIFY_SENDING_LEASE_SECONDS)
    return Message.objects.filter(state=MessageState.SENDING, claimed_at__lt=now - lease).update(
        state=MessageState.RETRYING, next_attempt_at=now, possible_duplicate=True
    )


def _claim(*, now: datetime, limit: int) -> list[Message]:
    """Claim up to `limit` due messages, oldest first, and commit the claim before anything is sent:
    concurrent deliverers skip each other's rows (SKIP LOCKED), and the attempt is on record."""
    with transaction.atomic():
        ids = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(state__in=DUE_STATES, next_attempt_at__lte=now)
            .order_by("priority", "next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Message.objects.filter(pk__in=ids).update(
            state=MessageState.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
        return list(
            Message.objects.filter(pk__in=ids)
            .select_related("recipient")
            .order_by("priority", "next_attempt_at", "id")
        )


def _record(message: Message, result: delivery.Result, *, now: datetime) -> str:
    """Record one send's result, only if this claim still owns the message (compare-and-set)."""
    owned = Message.objects.filter(pk=message.pk, state=MessageState.SENDING, claimed_at=message.claimed_at)
    if result.ok:
        owned.update(state=MessageState.SENT, sent_at=now, last_error="")
        return MessageState.SENT
    if message.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        owned.update(state=MessageState.FAILED, last_error=result.error[:500])
        log.error("Gave up on message %s after %d attempts: %s", message.pk, message.attempts, result.error)
        return MessageState.FAILED
    owned.update(
        state=MessageState.RETRYING,
        last_error=result.error[:500],
        next_attempt_at=now + backoff(message.attempts),
    )
    return MessageState.RETRYING


def messages_deliver_due(
    *, now: datetime | None = None, batch: int = 100, budget_seconds: float = 20.0
) -> int:
    """Deliver every due message, a batch at a time, several sends at once. Safe to run concurrently
    and repeatedly (each message is claimed once per attempt). Returns how many were sent."""
    started = timezone.now()
    messages_release_stale(now=now)
    sent = 0
    with ThreadPoolExecutor(max_workers=settings.NOTIFY_CONCURRENCY) as pool:
        while True:
            moment = now or timezone.now()
            claimed = _claim(now=moment, limit=batch)
            if not claimed:
                return sent
            # URLs are resolved here (database reads stay on this thread); the sends run concurrently.
            prepared = [delivery.prepare(message) for message in claimed]
            results = list(pool.map(delivery.transmit, prepared))
            finished = now or timezone.now()
            outcomes = []
            for message, result in zip(claimed, results, strict=True):
                state = _record(message, result, now=finished)
                message.last_error = result.error[:500]
                outcomes.append((message, state))
                sent += state == MessageState.SENT
            _announce(outcomes)
            if now is not None or (timezone.now() - started).total_seconds() > budget_seconds:
                return sent


def message_send_now(message: Message) -> Message:
    """Claim and deliver one queued message at once (the admin's and the CLI's test): the same claim,
    send and record as the workers'. Returns the message as recorded."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Message.objects.filter(pk=message.pk, state__in=DUE_STATES).update(
            state=MessageState.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    message.refresh_from_db()
    if claimed:
        _record(message, delivery.send(message), now=timezone.now())
        message.refresh_from_db()
    return message


def channel_test(*, name: str, actor: str) -> Message:
    """Send a test message to a channel now, through the outbox; the returned row says whether it
    arrived (sent) or why not (last_error)."""
    with transaction.atomic():
        message = message_enqueue(
            address_kind=Address.CHANNEL,
            address=name,
            kind="test",
            title="CDB Incident Console: test message",
            body=f"A test of the {name!r} channel, sent by {actor}. Nothing is wrong.",
        )
    assert message is not None
    return message_send_now(message)
