"""Signals in, incidents out. `signals_ingest` is the one way any alert (webhook, health check,
Prometheus rule) reaches an incident: idempotent per (source, fingerprint, start, status), grouped by
key, serialised per group, one transaction for a whole delivery."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

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

    @property
    def dedup_key(self) -> str:
        return f"{self.fingerprint}|{self.starts_at.isoformat()}|{self.status}"[:300]


@dataclass
class IngestResult:
    new: int = 0
    duplicates: int = 0
    incidents: set[int] = field(default_factory=set)


def _stored(alerts: list[AlertInput]) -> set[tuple[str, str]]:
    """(source, dedup_key) of the alerts already stored: one query per source."""
    keys: dict[str, set[str]] = {}
    for alert in alerts:
        keys.setdefault(alert.source, set()).add(alert.dedup_key)
    found: set[tuple[str, str]] = set()
    for source, dedup_keys in keys.items():
        found.update(
            (source, k)
            for k in Signal.objects.filter(source=source, dedup_key__in=dedup_keys)
            .order_by()
            .values_list("dedup_key", flat=True)
        )
    return found


def signals_ingest(alerts: list[AlertInput], *, received_at: datetime | None = None) -> IngestResult:
    """Store each new alert and open or update its incident; a repeated alert changes nothing.

    0. Drop the alerts already stored, with one query and no lock (a stored signal is never deleted,
       so "already stored" stays true): a re-delivery that brings nothing new writes nothing.
    1. Lock the remaining alerts' groups (one row per grouping key, in key order), so concurrent
       deliveries of one group queue behind each other and never deadlock; re-check under the locks.
    2. Firing: join the group's open incident (raising its severity if the alert is more severe), or
       declare one. Resolved: write it on the incident's timeline; incidents never close themselves.
    """
    received_at = received_at or timezone.now()
    result = IngestResult()
    stored = _stored(alerts)
    fresh: list[AlertInput] = []
    seen: set[tuple[str, str]] = set()
    for alert in alerts:
        key = (alert.source, alert.dedup_key)
        if key in stored or key in seen:
            result.duplicates += 1
        else:
            seen.add(key)
            fresh.append(alert)
    if not fresh:
        return result
    with transaction.atomic():
        # Lock groups in one global order: two deliveries of the same groups never wait on each other
        # crosswise (deadlock). Within a group the delivery's own order is kept.
        fresh.sort(key=lambda a: a.group_key)
        groups = {key: _lock_group(key) for key in dict.fromkeys(a.group_key[:300] for a in fresh)}
        stored = _stored(fresh)  # a concurrent delivery may have stored some while we waited
        signals = []
        fresh = [a for a in fresh if (a.source, a.dedup_key) not in stored]
        result.duplicates += len(stored)
        for key, members in itertools.groupby(fresh, key=lambda a: a.group_key[:300]):
            routed = _route_group(groups[key], list(members), received_at)
            for alert, incident in routed:
                signals.append(
                    Signal(
                        source=alert.source,
                        dedup_key=alert.dedup_key,
                        group_key=alert.group_key[:300],
                        fingerprint=alert.fingerprint[:200],
                        status=alert.status,
                        severity=alert.severity,
                        title=alert.title[:300],
                        summary=alert.summary,
                        labels=alert.labels,
                        annotations=alert.annotations,
                        links=alert.links,
                        starts_at=alert.starts_at,
                        ends_at=alert.ends_at,
                        received_at=received_at,
                        incident=incident,
                    )
                )
                result.new += 1
                if incident is not None:
                    result.incidents.add(incident.pk)
        Signal.objects.bulk_create(signals)
    return result


def _lock_group(key: str) -> SignalGroup:
    """The group's row, locked: one query when it exists; created first (race-safe) when it does not."""
    locked = SignalGroup.objects.select_for_update(of=("self",)).select_related("incident")
    group = locked.filter(key=key).first()
    if group is None:
        SignalGroup.objects.bulk_create([SignalGroup(key=key)], ignore_conflicts=True)
        group = locked.get(key=key)
    return group


def _route_group(
    group: SignalGroup, alerts: list[AlertInput], now: datetime
) -> list[tuple[AlertInput, Incident | None]]:
    """Route one group's new alerts in delivery order; their timeline entries are written together
    (one lock, one INSERT), flushed before any declaration or severity change to keep the order."""
    pending: list[tuple[str, dict[str, Any]]] = []
    routed: list[tuple[AlertInput, Incident | None]] = []

    def flush() -> None:
        if pending and group.incident is not None:
            incident_services.incident_record_signals(incident=group.incident, entries=list(pending))
        pending.clear()

    for alert in alerts:
        incident = group.incident
        is_open = incident is not None and incident.status in OPEN_STATUSES
        label = f"{alert.source}: {alert.title}"
        if alert.status == SignalStatus.RESOLVED:
            if incident is not None:
                pending.append((f"Resolved ({label})", {"source": alert.source, "status": "resolved"}))
            routed.append((alert, incident))
            continue
        if is_open and incident is not None:
            pending.append(
                (
                    f"Firing ({label})",
                    {"source": alert.source, "status": "firing", "severity": alert.severity},
                )
            )
            if alert.severity < incident.severity:
                flush()
                incident_services.incident_change_severity(
                    incident=incident,
                    actor=None,
                    severity=alert.severity,
                    reason=f"{alert.source} alert is SEV-{alert.severity}: {alert.title}"[:500],
                )
            routed.append((alert, incident))
            continue
        flush()
        incident = incident_services.incident_declare(
            actor=None,
            title=alert.title[:200] or "Alert",
            incident_type=IncidentType.objects.get(slug="other"),
            severity=alert.severity,
            description=alert.summary,
            affected_components=[alert.component] if alert.component else [],
            detected_at=min(alert.starts_at, now),
        )
        pending.append((f"Firing ({label})", {"source": alert.source, "status": "firing"}))
        group.incident = incident
        group.save(update_fields=["incident"])
        routed.append((alert, incident))
    flush()
    return routed


def heartbeat(name: str) -> None:
    from detection.models import Heartbeat

    Heartbeat.objects.update_or_create(name=name, defaults={"last_seen": timezone.now()})


def safe_links(*candidates: Any) -> list[str]:
    """Only http(s) URLs become links; everything else (javascript:, data:, junk) is dropped."""
    from urllib.parse import urlsplit

    links = []
    for value in candidates:
        if not isinstance(value, str) or len(value) > 2000:
            continue
        parts = urlsplit(value.strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            links.append(value.strip())
    return links
