"""CDB `/status` snapshots on an incident's timeline, for the post-mortem's Impact section.

Risk's `/status` holds `risk_state` (total exposure, open positions, pending orders, daily P&L) and
its counters (`orders_blocked`); execution's holds `stats.orders_rejected`. Both sit beside the
services' `/health` on the same port, so the console asks the monitored services named in
settings.CDB_STATUS_SERVICES that are enabled (health polling on) and have an http(s) URL.

A snapshot is owed when a real incident is declared, when it resolves, and when a person asks for
one from the incident page. What is owed is a `StatusSnapshotRequest` row, written in the same
transaction as the change that calls for it; a worker takes it, woken after commit or found by the
periodic sweep (CDB_STATUS_SWEEP_SECONDS), so a broker or worker outage delays a snapshot and loses
none. One not taken within CDB_STATUS_MISSED_AFTER of its moment is closed as missed, with a
timeline row saying so (a reading hours late is not the moment's). A taken snapshot is one timeline
row of kind `status_snapshot` whose data postmortems.prefill reads: exposure the highest seen,
orders affected the growth of the blocked and rejected counters between the first and the last. A
service that does not answer is named in the row; when none answers the row says so, and the
post-mortem's numbers stay for a person to fill.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from console.wakeup import Waker
from detection import outbound
from detection.models import MonitoredService, SnapshotMoment, StatusSnapshotRequest
from incidents import services as incident_services
from incidents.lifecycle import ActionRefused
from incidents.models import Incident, Status, TimelineEvent

KIND = "status_snapshot"
MOMENTS = {"declared": "at declaration", "resolved": "at resolution", "requested": "on request"}
# A worker holds a request this long (longer than asking every service at its timeout).
LEASE_SECONDS = 120
# A snapshot taken this long after its moment says how late it is.
LATE_NOTE_SECONDS = 60
# A /status body larger than this (a long `positions` map) is kept without its maps.
MAX_BYTES = 32_000


def status_urls() -> list[tuple[str, str]]:
    """(service name, its /status URL) for each enabled service named in CDB_STATUS_SERVICES."""
    names = list(settings.CDB_STATUS_SERVICES)
    found = []
    for service in MonitoredService.objects.filter(name__in=names, enabled=True).order_by("name"):
        parts = urlsplit(service.url)
        if parts.scheme in ("http", "https") and parts.netloc:
            found.append((service.name, urlunsplit((parts.scheme, parts.netloc, "/status", "", ""))))
    return sorted(found, key=lambda pair: names.index(pair[0]))


def _fetch(url: str, client: httpx.Client) -> dict[str, Any]:
    outbound.check_url(url)
    response = client.get(url)
    if response.status_code != 200:
        raise ValueError(f"HTTP {response.status_code}")
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def _bounded(body: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(body, default=str)) <= MAX_BYTES:
        return body
    slim = {k: v for k, v in body.items() if not isinstance(v, dict | list)}
    if isinstance(body.get("risk_state"), dict):
        slim["risk_state"] = {k: v for k, v in body["risk_state"].items() if not isinstance(v, dict | list)}
    if isinstance(body.get("stats"), dict):
        slim["stats"] = body["stats"]
    return slim


def status_read(urls: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each service's /status body (bounded) by name, and the error of each that did not answer."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    timeout = outbound.bounded_timeout(settings.CDB_STATUS_TIMEOUT)
    with httpx.Client(timeout=timeout, **outbound.CLIENT_OPTIONS) as client:
        for name, url in urls:
            try:
                answers[name] = _bounded(_fetch(url, client))
            except httpx.TimeoutException:
                errors[name] = f"timed out after {timeout:g} s"
            except (httpx.HTTPError, ValueError) as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"[:200]
    return answers, errors


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def snapshot_data(answers: dict[str, Any], errors: dict[str, str], moment: str) -> dict[str, Any]:
    """The row's data: risk's `risk_state` and counters, execution's `stats` (the keys prefill reads)."""
    data: dict[str, Any] = {"moment": moment, "services": sorted(answers), "errors": errors}
    for body in answers.values():
        if isinstance(body.get("risk_state"), dict):
            data["risk_state"] = body["risk_state"]
            data["orders_blocked"] = body.get("orders_blocked")
        if isinstance(body.get("stats"), dict) and "orders_rejected" in body["stats"]:
            data["stats"] = body["stats"]
    return data


def snapshot_message(data: dict[str, Any]) -> str:
    when = MOMENTS.get(data["moment"], data["moment"])
    risk = data.get("risk_state")
    failed = "; ".join(f"{name}: {error}" for name, error in data["errors"].items())
    if not isinstance(risk, dict):
        return f"CDB status {when} unavailable ({failed or 'no risk service answered'})"
    parts = []
    exposure = _number(risk.get("total_exposure"))
    if exposure is not None:
        parts.append(f"exposure {exposure:,.2f} USD")
    counts = [
        (risk.get("open_positions"), "open positions"),
        (risk.get("pending_orders"), "pending orders"),
        (data.get("orders_blocked"), "orders blocked"),
        ((data.get("stats") or {}).get("orders_rejected"), "orders rejected"),
    ]
    for value, label in counts:
        number = _number(value)
        if number is not None:
            parts.append(f"{int(number)} {label}")
    text = f"CDB status {when}: " + ", ".join(parts or ["no figures"])
    return text + (f" (not answering: {failed})" if failed else "")


def _late(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


def _message(request: StatusSnapshotRequest, data: dict[str, Any], now: datetime) -> str:
    text = snapshot_message(data)
    if request.requested_by is not None:
        text += f" (asked by {request.requested_by.get_username()})"
    late = (now - request.requested_at).total_seconds()
    if late >= LATE_NOTE_SECONDS:
        text += f", taken {_late(late)} after its moment"
    return text


def _unleased(now: datetime) -> Q:
    return Q(leased_until__isnull=True) | Q(leased_until__lt=now)


def _claim(pk: int, now: datetime) -> bool:
    """Lease a pending request to this worker; False when another holds it or it is done."""
    return bool(
        StatusSnapshotRequest.objects.filter(_unleased(now), pk=pk, done_at__isnull=True).update(
            leased_until=now + timedelta(seconds=LEASE_SECONDS), attempts=F("attempts") + 1
        )
    )


def _close(pk: int, outcome: str, *, message: str = "", data: dict[str, Any] | None = None) -> str:
    """Write the timeline row (if any) and close the request, once: under the request's row lock."""
    with transaction.atomic():
        request = StatusSnapshotRequest.objects.select_for_update().filter(pk=pk).first()
        if request is None or request.done_at is not None:
            return "done before"
        if message:
            incident_services.incident_record_event(
                incident=request.incident_id, kind=KIND, actor=None, message=message, data=data
            )
        request.done_at, request.outcome = timezone.now(), outcome
        request.save(update_fields=["done_at", "outcome"])
    return outcome


def status_request_take(pk: int, *, now: datetime | None = None) -> str:
    """Take one owed snapshot: "taken", "unavailable" (no risk service answered), "missed" (too
    late), "not configured" (no service to ask any more), or "done before"/"busy" (another run)."""
    now = now or timezone.now()
    if not _claim(pk, now):
        done = StatusSnapshotRequest.objects.filter(pk=pk, done_at__isnull=False).exists()
        return "done before" if done else "busy"
    request = StatusSnapshotRequest.objects.select_related("requested_by").get(pk=pk)
    when = MOMENTS[request.moment]
    if (now - request.requested_at).total_seconds() > settings.CDB_STATUS_MISSED_AFTER:
        waited = _late((now - request.requested_at).total_seconds())
        data = {"moment": request.moment, "request": pk, "missed": True, "services": [], "errors": {}}
        message = f"CDB status {when} not taken: no worker took it within {waited} of its moment"
        return _close(pk, "missed", message=message, data=data)
    urls = status_urls()
    if not urls:
        return _close(pk, "not configured")
    answers, errors = status_read(urls)  # outside any transaction: no lock waits on the network
    data = snapshot_data(answers, errors, request.moment) | {"request": pk}
    outcome = "taken" if "risk_state" in data else "unavailable"
    return _close(pk, outcome, message=_message(request, data, now), data=data)


def status_snapshots_take(*, batch: int = 20, now: datetime | None = None) -> dict[str, int]:
    """The sweep: take the owed snapshots, oldest first; {outcome: count}."""
    now = now or timezone.now()
    pending = StatusSnapshotRequest.objects.filter(_unleased(now), done_at__isnull=True).values_list(
        "pk", flat=True
    )
    counts: dict[str, int] = {}
    for pk in list(pending[:batch]):
        outcome = status_request_take(pk, now=now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


wake_snapshots = Waker("detection.tasks.take_status_snapshots")


def status_snapshot_request(*, incident: Incident, actor: Any) -> StatusSnapshotRequest:
    """A person asks for a snapshot now (the incident page), while the incident is open. Asking again
    while one is pending returns that one. Refused for a drill (its figures are its review's), for a
    resolved incident (the post-mortem counts orders up to resolution), and when no service is
    configured to be asked."""
    if incident.is_drill:
        raise ActionRefused("A drill is measured in its drill review; production's status is not read.")
    if incident.status in (Status.RESOLVED, Status.CLOSED):
        raise ActionRefused("The incident is resolved: its resolution's snapshot is its last.")
    if not status_urls():
        raise ActionRefused(
            "No CDB service answers status snapshots here: health polling is off for "
            + ", ".join(settings.CDB_STATUS_SERVICES or ["(none configured)"])
            + "."
        )
    with transaction.atomic():
        pending = StatusSnapshotRequest.objects.filter(
            incident=incident, moment=SnapshotMoment.REQUESTED, done_at__isnull=True
        ).first()
        if pending is not None:
            return pending
        request = StatusSnapshotRequest.objects.create(
            incident=incident,
            moment=SnapshotMoment.REQUESTED,
            requested_at=timezone.now(),
            requested_by=actor,
        )
        transaction.on_commit(wake_snapshots, robust=True)
    return request


def pending_request(incident: Incident) -> StatusSnapshotRequest | None:
    return (
        StatusSnapshotRequest.objects.filter(incident=incident, done_at__isnull=True)
        .select_related("requested_by")
        .first()
    )


def on_timeline(rows: list[TimelineEvent]) -> None:
    """The timeline listener: a real incident declared or resolved owes a snapshot, stored with the
    change (inside its transaction) and taken after commit. One query per batch that holds such a
    row (are the services configured?) and one insert; none otherwise."""
    now = timezone.now()
    wanted = []
    for row in rows:
        if row.incident.is_drill:
            continue
        if row.kind == "declared":
            wanted.append(
                StatusSnapshotRequest(incident_id=row.incident.pk, moment="declared", requested_at=now)
            )
        elif row.kind == "status_changed" and row.new_value == Status.RESOLVED:
            wanted.append(
                StatusSnapshotRequest(incident_id=row.incident.pk, moment="resolved", requested_at=now)
            )
    if not wanted or not status_urls():  # health polling off (make run's default): nothing to ask
        return
    # Once per incident and moment: a second resolution (after a reopen) owes nothing new.
    StatusSnapshotRequest.objects.bulk_create(wanted, ignore_conflicts=True)
    transaction.on_commit(wake_snapshots, robust=True)
