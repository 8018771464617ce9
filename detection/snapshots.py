"""CDB `/status` snapshots on an incident's timeline, for the post-mortem's Impact section.

Risk's `/status` holds `risk_state` (total exposure, open positions, pending orders, daily P&L) and
its counters (`orders_blocked`); execution's holds `stats.orders_rejected`. Both sit beside the
services' `/health` on the same port, so the console asks the monitored services named in
settings.CDB_STATUS_SERVICES that are enabled (health polling on) and have an http(s) URL.

A snapshot is taken when a real incident is declared and when it resolves (a task started on
commit; drills have their own review), and is one timeline row of kind `status_snapshot` whose data
postmortems.prefill reads: exposure the highest seen, orders affected the growth of the blocked and
rejected counters between the first and the last snapshot. The task is at-least-once: a second run
for the same moment finds its row and asks nothing. A service that does not answer is named in the
row; when none answers the row says so, and the post-mortem's numbers stay for a person to fill.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import transaction

from detection import outbound
from detection.models import MonitoredService
from incidents import services as incident_services
from incidents.models import Incident, Status, TimelineEvent

KIND = "status_snapshot"
MOMENTS = {"declared": "at declaration", "resolved": "at resolution"}
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


def _taken(incident_id: int, moment: str) -> bool:
    return TimelineEvent.objects.filter(incident_id=incident_id, kind=KIND, data__moment=moment).exists()


def status_snapshot_take(*, incident_id: int, moment: str) -> str:
    """Ask the services and write the row: "taken", "unavailable", "done before", "not configured" or
    "no such incident"."""
    if moment not in MOMENTS:
        raise ValueError(f"unknown snapshot moment {moment!r}")
    urls = status_urls()
    if not urls:
        return "not configured"
    if not Incident.objects.filter(pk=incident_id).exists():
        return "no such incident"
    if _taken(incident_id, moment):
        return "done before"
    answers, errors = status_read(urls)  # outside any transaction: no lock waits on the network
    data = snapshot_data(answers, errors, moment)
    with transaction.atomic():
        if _taken(incident_id, moment):
            return "done before"
        incident_services.incident_record_event(
            incident=incident_id, kind=KIND, actor=None, message=snapshot_message(data), data=data
        )
    return "taken" if "risk_state" in data else "unavailable"


def on_timeline(rows: list[TimelineEvent]) -> None:
    """The timeline listener: a real incident declared or resolved gets a snapshot after commit. One
    query per batch that holds such a row (are the services configured?), none otherwise."""
    wanted = []
    for row in rows:
        if row.incident.is_drill:
            continue
        if row.kind == "declared":
            wanted.append((row.incident.pk, "declared"))
        elif row.kind == "status_changed" and row.new_value == Status.RESOLVED:
            wanted.append((row.incident.pk, "resolved"))
    if not wanted or not status_urls():  # health polling off (make run's default): nothing to ask
        return
    for pk, moment in wanted:
        transaction.on_commit(partial(_start, pk, moment), robust=True)


def _start(incident_id: int, moment: str) -> None:
    from detection.tasks import snapshot_status

    snapshot_status.delay(incident_id, moment)
