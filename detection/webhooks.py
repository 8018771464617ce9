"""Strict parsing of Alertmanager (webhook v4) and Grafana alerting payloads into AlertInputs.

Everything in them is untrusted: each problem is reported with the path of the field that has it,
so the sender's operator can fix their configuration from the 400 message alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from detection.models import Source
from detection.services import AlertInput, safe_links, severity_from_label

MAX_ALERTS = 1000
MAX_TEXT = 10_000
MAX_LABELS = 100
MAX_URL = 2000
ZERO_TIME = "0001-01-01T00:00:00Z"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


class PayloadError(ValueError):
    pass


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise PayloadError(f"{where}: must not be empty")
    if len(value) > limit:
        raise PayloadError(f"{where}: longer than {limit} characters")
    if "\x00" in value:
        raise PayloadError(f"{where}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{where}: contains a lone UTF-16 surrogate (not valid text)") from None
    return value


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    mapping = _object(value, where)
    if len(mapping) > MAX_LABELS:
        raise PayloadError(f"{where}: more than {MAX_LABELS} entries")
    return {
        _text(k, f"{where} key", limit=200): _text(v, f"{where}.{k}", required=False)
        for k, v in mapping.items()
    }


def _time(value: Any, where: str, *, required: bool = True) -> datetime | None:
    if value in (None, "", ZERO_TIME) and not required:
        return None
    text = _text(value, where, limit=64)
    try:
        parsed = parse_datetime(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise PayloadError(f"{where}: {text!r} is not an RFC 3339 time with a zone")
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise PayloadError(f"{where}: {text!r} is out of range (years 1970 to 9998 in UTC)")
    return in_utc


def group_key(labels: dict[str, str]) -> str:
    """settings.ALERT_GROUP_BY (default alertname + service; job or instance stand in for service)."""
    parts = []
    for name in settings.ALERT_GROUP_BY:
        value = labels.get(name)
        if value is None and name == "service":
            value = labels.get("job") or labels.get("instance")
        parts.append(f"{name}={value or ''}")
    return ",".join(parts)


def _alerts(
    payload: dict[str, Any], source: str, extra_links: Callable[[dict[str, Any], str], list[str]]
) -> list[AlertInput]:
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("alerts: expected a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"alerts: more than {MAX_ALERTS} alerts in one request")
    parsed = []
    for i, raw in enumerate(alerts):
        where = f"alerts[{i}]"
        alert = _object(raw, where)
        status = _text(alert.get("status"), f"{where}.status", limit=20)
        if status not in ("firing", "resolved"):
            raise PayloadError(f"{where}.status: {status!r} is neither 'firing' nor 'resolved'")
        labels = _string_map(alert.get("labels"), f"{where}.labels")
        if not labels.get("alertname", "").strip():
            raise PayloadError(f"{where}.labels.alertname: missing or blank")
        annotations = _string_map(alert.get("annotations"), f"{where}.annotations")
        fingerprint = _text(alert.get("fingerprint"), f"{where}.fingerprint", limit=200)
        starts_at = _time(alert.get("startsAt"), f"{where}.startsAt")
        assert starts_at is not None
        ends_at = _time(alert.get("endsAt"), f"{where}.endsAt", required=False)
        generator = _text(alert.get("generatorURL"), f"{where}.generatorURL", required=False, limit=MAX_URL)
        links = safe_links(generator, annotations.get("runbook_url"), *extra_links(alert, where))
        summary = annotations.get("summary") or annotations.get("description") or ""
        parsed.append(
            AlertInput(
                source=source,
                fingerprint=fingerprint,
                status=status,
                starts_at=starts_at,
                ends_at=ends_at,
                severity=severity_from_label(labels.get("severity")),
                title=f"{labels['alertname']}: {summary}" if summary else labels["alertname"],
                summary=annotations.get("description", ""),
                labels=labels,
                annotations=annotations,
                links=links,
                group_key=f"{source}:{group_key(labels)}",
                component=labels.get("service") or labels.get("job") or "",
                incident_type=labels.get("incident_type", "").strip(),
            )
        )
    return parsed


def parse_alertmanager(payload: Any) -> list[AlertInput]:
    body = _object(payload, "body")
    if body.get("version") != "4":
        raise PayloadError(
            f"version: expected '4' (Alertmanager webhook payload), got {body.get('version')!r}"
        )
    return _alerts(body, Source.ALERTMANAGER, lambda alert, where: [])


GRAFANA_LINKS = ("dashboardURL", "panelURL", "silenceURL")


def parse_grafana(payload: Any) -> list[AlertInput]:
    body = _object(payload, "body")
    if body.get("version") != "1":
        raise PayloadError(f"version: expected '1' (Grafana alerting webhook), got {body.get('version')!r}")
    return _alerts(body, Source.GRAFANA, _grafana_links)


def _grafana_links(alert: dict[str, Any], where: str) -> list[str]:
    # Checked like generatorURL: text PostgreSQL can store, or the delivery is refused naming the field.
    return [_text(alert.get(key), f"{where}.{key}", required=False, limit=MAX_URL) for key in GRAFANA_LINKS]
