"""The only code that creates timeline rows. Call it inside the service's transaction.

Kinds are open: incidents names its own (`EventKind`); another app registers its kinds here with a
label (`register_kind`, from its AppConfig.ready) and ships `templates/timeline/<kind>.html` to render
them. Other apps write their rows through `incidents.services.incident_record_event`.

Every change to an incident writes exactly one row here, in the change's transaction, so the timeline
is also the seam where other apps follow incidents: a listener (`listen`, from an AppConfig.ready)
receives each batch of new rows inside that transaction and may write its own consequences there
(an escalation chain, a message in the outbox). A listener that raises undoes the change: keep them
to writes of the app's own rows; anything slow belongs in a task started on commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from incidents.models import EventKind, Incident, TimelineEvent

_KINDS: dict[str, str] = dict(EventKind.choices)
Listener = Callable[[list[TimelineEvent]], None]
_LISTENERS: dict[str, Listener] = {}


def listen(name: str, listener: Listener) -> None:
    """Call `listener(rows)` with every batch of new timeline rows, inside their transaction. Each row
    carries its incident (`row.incident`, the object the service holds: no query)."""
    _LISTENERS[name] = listener


def _announce(rows: list[TimelineEvent]) -> None:
    for listener in list(_LISTENERS.values()):
        listener(rows)


def register_kind(kind: str, label: str) -> None:
    if len(kind) > 30:
        raise ValueError(f"timeline kind {kind!r} is longer than 30 characters")
    _KINDS[kind] = label


def kind_label(kind: str) -> str:
    return _KINDS.get(kind, kind.replace("_", " ").capitalize())


def kinds() -> dict[str, str]:
    return dict(_KINDS)


def record(
    incident: Incident,
    *,
    kind: str,
    actor: Any = None,
    old: object = "",
    new: object = "",
    message: str = "",
    data: dict[str, Any] | None = None,
    at=None,  # type: ignore[no-untyped-def]
) -> TimelineEvent:
    """Append one event and move the incident's version to it (the live page watches the version)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("timeline.record must run inside the service's transaction")
    event = TimelineEvent.objects.create(
        incident=incident,
        kind=kind,
        actor=actor if getattr(actor, "pk", None) else None,
        created_at=at or timezone.now(),
        old_value=str(old)[:200],
        new_value=str(new)[:200],
        message=message,
        data=data or {},
    )
    Incident.objects.filter(pk=incident.pk).update(version=event.pk)
    incident.version = event.pk
    _announce([event])
    return event


def record_many(incident: Incident, events: list[dict[str, Any]]) -> list[TimelineEvent]:
    """Append several events (kind, actor, old, new, message, data, at) in one INSERT; the version
    moves to the last."""
    return record_many_incidents({incident: events})


def record_many_incidents(events: dict[Incident, list[dict[str, Any]]]) -> list[TimelineEvent]:
    """Append events to several incidents in one INSERT, each incident's in its given order, and move
    each incident's version to its last event in one UPDATE. The caller holds the incidents' locks."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("timeline.record_many must run inside the service's transaction")
    rows = TimelineEvent.objects.bulk_create(
        row for incident, entries in events.items() for row in _events(incident, entries)
    )
    if not rows:
        return []
    newest: dict[int, int] = {}
    for row in rows:
        newest[row.incident_id] = max(newest.get(row.incident_id, 0), row.pk)
    versions = Case(*(When(pk=pk, then=Value(version)) for pk, version in newest.items()))
    Incident.objects.filter(pk__in=newest).update(version=versions)
    for incident in events:
        incident.version = newest.get(incident.pk, incident.version)
    _announce(rows)
    return rows


def _events(incident: Incident, events: list[dict[str, Any]]) -> list[TimelineEvent]:
    now = timezone.now()
    return [
        TimelineEvent(
            incident=incident,
            kind=e["kind"],
            actor=e["actor"] if getattr(e.get("actor"), "pk", None) else None,
            created_at=e.get("at") or now,
            old_value=str(e.get("old", ""))[:200],
            new_value=str(e.get("new", ""))[:200],
            message=e.get("message", ""),
            data=e.get("data") or {},
        )
        for e in events
    ]
