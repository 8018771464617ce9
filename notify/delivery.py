"""Sending one message through Apprise: the one small interface between the outbox and the world.

Every channel kind Apprise knows works (Slack, Discord, Microsoft Teams, email, generic JSON webhooks…).
Each send is bounded by timeouts. Where the kind can carry headers (JSON/form/XML webhooks, email) the
message's idempotency key goes along as `X-Idempotency-Key`, so a receiver can drop the rare second
copy a worker's death mid-send causes; chat services (Slack, Discord, Teams) cannot, and show it twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apprise
from django.conf import settings

from notify.models import Address, Channel, Message

log = logging.getLogger(__name__)

# Apprise schemes whose plugins turn `+Name=value` query arguments into headers.
HEADER_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos"})
MAX_ERROR = 500


class DeliveryError(Exception):
    """The message cannot be sent as addressed (no such channel, a disabled one, email not set up)."""


@dataclass(frozen=True)
class Result:
    ok: bool
    error: str = ""


def channel_url(name: str) -> str:
    """The channel's URL: from the environment first, else from the database (enabled only)."""
    from_env = settings.NOTIFY_CHANNELS.get(name)
    if from_env:
        return from_env
    channel = Channel.objects.filter(name=name).first()
    if channel is None:
        raise DeliveryError(f"no channel named {name!r} (add it in admin or NOTIFY_CHANNELS)")
    if not channel.enabled:
        raise DeliveryError(f"channel {name!r} is disabled")
    return channel.url


def email_url(address: str) -> str:
    base = settings.NOTIFY_EMAIL_URL
    if not base:
        raise DeliveryError("email is not set up (NOTIFY_EMAIL_URL)")
    return _with_query(base, {"to": address})


def url_for(message: Message) -> str:
    """The Apprise URL a message goes to, with its timeouts and, where possible, its idempotency key."""
    if message.address_kind == Address.CHANNEL:
        url = channel_url(message.address)
    elif message.address_kind == Address.EMAIL:
        url = email_url(message.address)
    else:
        url = message.address
    extra = {"cto": f"{settings.NOTIFY_CONNECT_TIMEOUT:g}", "rto": f"{settings.NOTIFY_READ_TIMEOUT:g}"}
    if urlsplit(url).scheme.lower() in HEADER_SCHEMES:
        extra["+X-Idempotency-Key"] = message.idempotency_key
    return _with_query(url, extra, keep_existing=True)


def _with_query(url: str, extra: dict[str, str], *, keep_existing: bool = False) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in extra.items():
        if not (keep_existing and key in query):
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query, safe="@:/+")))


def valid_url(url: str) -> bool:
    return apprise.Apprise.instantiate(url) is not None


@dataclass(frozen=True)
class Prepared:
    """A message ready to leave: its URL resolved (database reads happen here, in the caller's
    thread), or the reason it cannot be sent."""

    message: Message
    url: str = ""
    error: str = ""


def prepare(message: Message) -> Prepared:
    try:
        return Prepared(message, url=url_for(message))
    except DeliveryError as exc:
        return Prepared(message, error=str(exc))


def transmit(prepared: Prepared) -> Result:
    """Send a prepared message now (no database access: safe in a worker thread). Never raises."""
    if prepared.error:
        return Result(False, prepared.error)
    message = prepared.message
    sender = apprise.Apprise()
    if not sender.add(prepared.url):
        kind = message.get_address_kind_display().lower()
        return Result(False, f"not a valid notification URL for {kind}")
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            ok = bool(sender.notify(title=message.title, body=message.body))
        except Exception as exc:  # a plugin bug must not kill the deliverer
            log.exception("Apprise raised while sending message %s", message.pk)
            return Result(False, f"{exc.__class__.__name__}: {exc}"[:MAX_ERROR])
        logs = captured.getvalue().strip()
    if ok:
        return Result(True)
    lines = [line for line in logs.splitlines() if line.strip()]
    return Result(False, (lines[-1] if lines else "the service did not accept the message")[:MAX_ERROR])


def send(message: Message) -> Result:
    return transmit(prepare(message))
