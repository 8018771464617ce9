"""Signals in, incidents out, in two steps. `signals_receive` stores an alert (webhook, health check,
Prometheus rule) once per (source, fingerprint, start, status); `signals_route` turns stored signals
into incidents, grouped by key, in batches. Webhooks answer after the first step and wake a worker for
the second, so a burst of alerts costs the sender one insert each and is routed in a few batches;
the console's own detectors, already in a worker, do both at once (`signals_ingest`)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from console.models import Heartbeat
from console.wakeup import Waker
from detection.models import Signal, SignalGroup, SignalStatus
from incidents import services as incident_services
from incidents.models import OPEN_STATUSES, Incident, IncidentType, Severity

log = logging.getLogger(__name__)

# Label severity → playbook severity. Anything else (or nothing) is SEV-1: fail loud.
SEVERITY_LABELS = {
    "critical": Severity.SEV1,
    "high": Severity.SEV2,
    "warning": Severity.SEV3,
    "info": Severity.SEV4,
}


def severity_from_label(value: object) -> int:
    return int(SEVERITY_LABELS.get(str(value).strip().lower(), Severity.SEV1)) if value is not None else 1


@dataclass(frozen=True)
class AlertInput:
    source: str
    fingerprint: str
    status: str
    starts_at: datetime
    severity: int
    title: str
    group_key: str
    summary: str = ""
    ends_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    component: str = ""
    # The playbook type (slug) the source names; empty: routing maps the alertname, else "other".
    incident_type: str = ""

    @property
    def dedup_key(self) -> str:
        return f"{self.fingerprint}|{self.starts_at.isoformat()}|{self.status}"[:300]


@dataclass
class IngestResult:
    new: int = 0
    duplicates: int = 0


# Signals routed per transaction: big enough to amortise a burst, small enough to keep locks short.
ROUTE_BATCH = 500
DRILL_SOURCE = DRILL_LABEL = "drill"
ROUTER = "alert routing"  # the Heartbeat row that serialises routers and shows when routing last ran
WAKE_INTERVAL = 0.25  # seconds: a web process wakes the router at most this often (see _RouterWaker)


def _stored(alerts: list[AlertInput]) -> set[tuple[str, str]]:
    """(source, dedup_key) of the alerts already stored: one query per source."""
    keys: dict[str, set[str]] = {}
    for alert in alerts:
        keys.setdefault(alert.source, set()).add(alert.dedup_key)
    found: set[tuple[str, str]] = set()
    table = connection.ops.quote_name(Signal._meta.db_table)
    with connection.cursor() as cursor:
        # Plain SQL: this runs for every delivery, and the ORM's query building cost more than the query.
        for source, dedup_keys in keys.items():
            marks = ", ".join(["%s"] * len(dedup_keys))
            cursor.execute(
                f"SELECT dedup_key FROM {table} WHERE source = %s AND dedup_key IN ({marks})",  # noqa: S608
                [source, *dedup_keys],
            )
            found.update((source, row[0]) for row in cursor.fetchall())
    return found


def _insert_new(signals: list[Signal]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING: simultaneous deliveries of one alert (Alertmanager's HA
    peers) store it once and neither fails. Returns how many rows this call inserted."""
    meta = Signal._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [f.get_db_prep_save(f.pre_save(s, add=True), connection) for s in signals for f in fields]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES {', '.join([row] * len(signals))} "
        "ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall())


def signals_receive(
    alerts: list[AlertInput], *, received_at: datetime | None = None, wake: bool = True
) -> IngestResult:
    """Store each new alert, not yet routed; a repeated alert changes nothing. Committed on return.

    1. Drop the alerts already stored, with one query and no lock (a stored signal is never deleted,
       so "already stored" stays true): a re-delivery that brings nothing new writes nothing. A
       single alert skips this: its INSERT finds a stored one as cheaply, and writes nothing then.
    2. Insert the rest in one statement that skips any a concurrent delivery stored meanwhile.
    3. Wake a router once committed. PostgreSQL is the source of truth: when the broker is down the
       signals wait, and the periodic `route_signals` sweep routes them.
    """
    received_at = received_at or timezone.now()
    result = IngestResult()
    stored = _stored(alerts) if len(alerts) > 1 else set()
    fresh: dict[tuple[str, str], AlertInput] = {}
    for alert in alerts:
        key = (alert.source, alert.dedup_key)
        if key in stored or key in fresh:
            result.duplicates += 1
        else:
            fresh[key] = alert
    if not fresh:
        return result
    # One statement: atomic by itself, committed on return outside a transaction.
    result.new = _insert_new([_signal(alert, received_at) for alert in fresh.values()])
    result.duplicates += len(fresh) - result.new
    if result.new and wake:
        transaction.on_commit(wake_router)
    return result


def _signal(alert: AlertInput, received_at: datetime) -> Signal:
    return Signal(
        source=alert.source,
        dedup_key=alert.dedup_key,
        group_key=alert.group_key[:300],
        fingerprint=alert.fingerprint[:200],
        status=alert.status,
        severity=alert.severity,
        title=alert.title[:300],
        summary=alert.summary,
        component=alert.component[:80],
        labels=alert.labels,
        annotations=alert.annotations,
        links=alert.links,
        incident_type=alert.incident_type[:40],
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        received_at=received_at,
    )


# Publishes `route_signals` from one background thread per process, so a delivery's answer never
# waits on the broker; wake-ups within WAKE_INTERVAL are coalesced into one publish, so a burst of
# deliveries is routed in a few batches. Best effort: the periodic sweep routes what a lost or refused
# wake-up leaves waiting.
wake_router = Waker("detection.tasks.route_signals", interval=WAKE_INTERVAL)


def signals_route(*, batch: int = ROUTE_BATCH, now: datetime | None = None) -> int:
    """Route the stored, unrouted signals into incidents, oldest first; returns how many.

    One router at a time: each batch first updates the router's Heartbeat row, which every other
    router then waits on (a row lock on PostgreSQL, the write lock on SQLite), so a group's signals
    reach its timeline in the order they were stored. Within a batch:
    1. Lock the batch's groups (one row per grouping key, in key order, so the routers and anything
       else that locks groups never deadlock).
    2. Firing: join the group's open incident (raising its severity if the alert is more severe), or
       declare one. Resolved: write it on the incident's timeline; incidents never close themselves.
    3. Mark the signals routed, on their incident.
    """
    routed = 0
    while True:
        with transaction.atomic():
            moment = now or timezone.now()
            if not Heartbeat.objects.filter(name=ROUTER).update(last_seen=moment):
                Heartbeat.objects.get_or_create(name=ROUTER, defaults={"last_seen": moment})
                Heartbeat.objects.filter(name=ROUTER).update(last_seen=moment)
            pending = list(Signal.objects.filter(routed_at__isnull=True).order_by("id")[:batch])
            if not pending:
                return routed
            by_group: dict[str, list[Signal]] = {}
            for signal in pending:
                by_group.setdefault(signal.group_key, []).append(signal)
            groups = _lock_groups(sorted(by_group))
            targets: dict[int, int | None] = {}  # signal → incident
            batch_state = _Batch()
            for signal, opened in _declare_openers(groups, by_group, moment, batch_state):
                targets[signal.pk] = opened.pk
            for key in sorted(by_group):
                for signal, incident in _route_group(groups[key], by_group[key], moment, batch_state):
                    targets[signal.pk] = incident.pk if incident else None
            batch_state.flush()
            _mark_routed(targets, moment)
            routed += len(pending)
        if len(pending) < batch:
            return routed


def _opening(alerts: list[Signal] | deque[Signal]) -> list[Signal]:
    """The alerts that open an incident together: the first, if firing, and the firing alerts right
    behind it that would join without raising its severity (they go on the timeline with it)."""
    if not alerts or alerts[0].status != SignalStatus.FIRING:
        return []
    opening = [alerts[0]]
    for alert in list(alerts)[1:]:
        if alert.status != SignalStatus.FIRING or alert.severity < opening[0].severity:
            break
        opening.append(alert)
    return opening


def is_drill_signal(signal: Signal) -> bool:
    """A drill's simulated alert: source "drill" and a grouping key "drill:<drill id>:…", which only
    the console's drills write (webhooks' keys start with their own source), so it opens a drill
    incident and never joins a real one. A label cannot make an alert a drill: a webhook sets labels."""
    return signal.source == DRILL_SOURCE and signal.group_key.startswith(f"{DRILL_SOURCE}:")


def _declaration(opening: list[Signal], now: datetime, batch: _Batch) -> incident_services.Declaration:
    first = opening[0]
    return incident_services.Declaration(
        is_drill=is_drill_signal(first),
        incident_type=batch.type_for(first),
        title=first.title[:200] or "Alert",
        severity=first.severity,
        description=first.summary,
        affected_components=[first.component] if first.component else [],
        detected_at=min(first.starts_at, now),
        signals=[
            (f"Firing ({first.source}: {first.title})", {"source": first.source, "status": "firing"}),
            *(_joined(a) for a in opening[1:]),
        ],
    )


def _joined(alert: Signal) -> tuple[str, dict[str, Any]]:
    data = {"source": alert.source, "status": "firing", "severity": alert.severity}
    return f"Firing ({alert.source}: {alert.title})", data


def _declare_openers(
    groups: dict[str, SignalGroup], by_group: dict[str, list[Signal]], now: datetime, batch: _Batch
) -> list[tuple[Signal, Incident]]:
    """Open, all at once, the incidents of the groups whose batch starts with an alert that opens
    one (no open incident yet): a burst of new alerts costs a few statements, not a few per group.
    Their opening alerts leave `by_group`; the rest are routed one by one."""
    openers: dict[str, list[Signal]] = {}
    for key in sorted(by_group):
        incident = groups[key].incident
        has_open = incident is not None and incident.status in OPEN_STATUSES
        if not has_open and (opening := _opening(by_group[key])):
            openers[key] = opening
    if not openers:
        return []
    incidents = incident_services.incidents_declare(
        declarations=[_declaration(opening, now, batch) for opening in openers.values()],
        defaults=batch.defaults,
    )
    routed: list[tuple[Signal, Incident]] = []
    for (key, opening), incident in zip(openers.items(), incidents, strict=True):
        groups[key].incident = incident
        by_group[key] = by_group[key][len(opening) :]
        routed.extend((alert, incident) for alert in opening)
    SignalGroup.objects.bulk_update([groups[key] for key in openers], ["incident"])
    return routed


def _mark_routed(targets: dict[int, int | None], moment: datetime) -> None:
    """Each signal on its incident, all in one UPDATE (plain SQL that PostgreSQL and SQLite share)."""
    table = connection.ops.quote_name(Signal._meta.db_table)
    rows = ", ".join(["(%s, CAST(%s AS bigint))"] * len(targets))
    sql = (
        f"WITH routed(id, incident_id) AS (VALUES {rows}) "  # noqa: S608
        f"UPDATE {table} SET routed_at = %s, "
        f"incident_id = (SELECT routed.incident_id FROM routed WHERE routed.id = {table}.id) "
        f"WHERE id IN (SELECT id FROM routed)"
    )
    params: list[Any] = [value for pair in targets.items() for value in pair]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, moment])


def signals_ingest(alerts: list[AlertInput], *, received_at: datetime | None = None) -> IngestResult:
    """Store and route at once: for the console's own detectors (health polling, Prometheus rules),
    which already run in a worker."""
    result = signals_receive(alerts, received_at=received_at, wake=False)
    if result.new:
        signals_route()
    return result


def _lock_groups(keys: list[str]) -> dict[str, SignalGroup]:
    """The groups' rows, locked in key order: one query when they all exist; the missing ones are
    created first (race-safe), for one more query each way."""
    # The incident comes along with what routing decides on: whether it is open, and its severity.
    locked = (
        SignalGroup.objects.select_for_update(of=("self",))
        .select_related("incident")
        .only("key", "incident__status", "incident__severity")
        .order_by("key")
    )
    groups = {g.key: g for g in locked.filter(key__in=keys)}
    missing = [key for key in keys if key not in groups]
    if missing:
        SignalGroup.objects.bulk_create([SignalGroup(key=key) for key in missing], ignore_conflicts=True)
        groups |= {g.key: g for g in locked.filter(key__in=missing)}
    return groups


class _Batch:
    """One routing batch's shared state: what declarations need from the playbook (read at most
    once), and the timeline entries of alerts joining incidents, written for all incidents together
    at the end (or for one incident early, before anything else goes on its timeline)."""

    def __init__(self) -> None:
        self.joins: dict[int, list[tuple[str, dict[str, Any]]]] = {}

    def join(self, incident: Incident, entry: tuple[str, dict[str, Any]]) -> None:
        self.joins.setdefault(incident.pk, []).append(entry)

    def flush(self, incident: Incident | None = None) -> None:
        if incident is None:
            entries, self.joins = self.joins, {}
        else:
            entries = {incident.pk: self.joins.pop(incident.pk)} if incident.pk in self.joins else {}
        if entries:
            incident_services.incidents_record_signals(entries=entries)

    @cached_property
    def types(self) -> dict[str, IncidentType]:
        """The playbook's incident types by slug, read once per batch."""
        return {t.slug: t for t in IncidentType.objects.all()}

    @cached_property
    def by_alert_name(self) -> dict[str, IncidentType]:
        return {str(name): t for t in self.types.values() for name in t.alert_names or []}

    def type_for(self, signal: Signal) -> IncidentType:
        """The type an alert opens its incident with: the one its source named (a health check's or
        rule's definition, an `incident_type` label), else the type listing its alertname, else
        "other", the catch-all, until someone triages it."""
        named = self.types.get(signal.incident_type) or self.by_alert_name.get(
            str(signal.labels.get("alertname", ""))
        )
        if named is not None:
            return named
        if "other" not in self.types:
            raise IncidentType.DoesNotExist("No incident type 'other': run manage.py load_playbook.")
        return self.types["other"]

    @cached_property
    def defaults(self) -> incident_services.DeclareDefaults:
        return incident_services.declare_defaults()


def _route_group(
    group: SignalGroup, alerts: list[Signal], now: datetime, batch: _Batch
) -> list[tuple[Signal, Incident | None]]:
    """Route one group's new alerts in delivery order. Joining alerts' timeline entries wait in the
    batch, written before anything else goes on their incident's timeline, to keep the order."""
    routed: list[tuple[Signal, Incident | None]] = []
    queue = deque(alerts)
    while queue:
        alert = queue.popleft()
        incident = group.incident
        is_open = incident is not None and incident.status in OPEN_STATUSES
        if alert.status == SignalStatus.RESOLVED:
            if incident is not None:
                label = f"{alert.source}: {alert.title}"
                batch.join(incident, (f"Resolved ({label})", {"source": alert.source, "status": "resolved"}))
            routed.append((alert, incident))
            continue
        if is_open and incident is not None:
            batch.join(incident, _joined(alert))
            if alert.severity < incident.severity:
                batch.flush(incident)
                incident_services.incident_change_severity(
                    incident=incident,
                    actor=None,
                    severity=alert.severity,
                    reason=f"{alert.source} alert is SEV-{alert.severity}: {alert.title}"[:500],
                )
            routed.append((alert, incident))
            continue
        if incident is not None:
            batch.flush(incident)
        queue.appendleft(alert)
        opening = _opening(queue)
        for _ in opening:
            queue.popleft()
        declaration = _declaration(opening, now, batch)
        incident = incident_services.incident_declare(
            actor=None,
            incident_type=declaration.incident_type,
            defaults=batch.defaults,
            title=declaration.title,
            severity=declaration.severity,
            description=declaration.description,
            affected_components=declaration.affected_components,
            detected_at=declaration.detected_at,
            signals=declaration.signals,
            is_drill=declaration.is_drill,
        )
        group.incident = incident
        group.save(update_fields=["incident"])
        routed.extend((a, incident) for a in opening)
    return routed


def safe_links(*candidates: Any) -> list[str]:
    """Only http(s) URLs become links; everything else (javascript:, data:, text that is not a URL,
    such as `http://[::1` or a port out of range) is dropped."""
    from urllib.parse import urlsplit

    links = []
    for value in candidates:
        if not isinstance(value, str) or len(value) > 2000:
            continue
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
        except ValueError:
            continue
        if parts.scheme in ("http", "https") and parts.hostname:
            links.append(value.strip())
    return links
