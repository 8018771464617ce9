"""Health polling of CDB's services (docs/cdb/contracts.md, section 2).

Every enabled service is checked concurrently, each bounded by its own timeout, and judged by its
body, not by HTTP 200 alone. Each result is stored compactly (`HealthResult`, pruned to the newest
HEALTH_RESULTS_KEEP per service). The service's state is damped: down or degraded after
HEALTH_DOWN_AFTER unhealthy results in a row, up after HEALTH_UP_AFTER healthy ones. Each damped
transition is one signal through `signals_ingest`: that is how an outage opens or raises an
incident, and how a recovery reaches its timeline (incidents never close by themselves).

The stack itself is data: `detection/data/services.yaml`, loaded by `manage.py load_services`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import httpx
import yaml
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from console.services import heartbeat
from detection import outbound
from detection.models import CheckKind, Health, HealthResult, Judge, MonitoredService, SignalStatus, Source
from detection.services import AlertInput, safe_links, signals_ingest
from incidents.models import IncidentType

log = logging.getLogger(__name__)


class Verdict(NamedTuple):
    """What one answer shows: the state, why in the console's words (`detail`, for everyone), and what
    the service itself said (`reply`: a body snippet or its reason field, for leads and above, since an
    edited URL's body can be anything)."""

    state: str
    detail: str
    reply: str = ""


HEALTHY_VALUES: Final = frozenset({"ok", "healthy"})
# Prometheus's /-/healthy answers plain text; no other non-JSON body is healthy.
HEALTHY_TEXTS: Final = frozenset({"Prometheus Server is Healthy.", "Prometheus is Healthy."})
WS_FLAGS: Final = ("ws_connected", "redis_connected")
# Fields in which CDB's services say what is wrong (regime's last_error, market's detail list).
REASON_FIELDS: Final = ("last_error", "detail", "error", "message")
MAX_BODY: Final = 64 * 1024  # a health body is small; read no more than this
DETAIL_MAX: Final = 200  # HealthResult.detail
REPLY_MAX: Final = 300  # MonitoredService.last_reply

# TCP checks: what to send after connecting. postgres is pg_isready's first step (an SSLRequest,
# answered "S" or "N" by any PostgreSQL), redis is redis-cli's PING.
TCP_PROBES: Final[dict[str, bytes]] = {
    "tcp": b"",
    "postgres": (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"),
    "postgresql": (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"),
    "redis": b"PING\r\n",
}

SERVICES_FILE: Final = outbound.SERVICES_FILE


# --- Judging: one answer → (state, detail). Pure functions. ---


def judge(service: MonitoredService, status_code: int, body: bytes) -> Verdict:
    """The state one HTTP answer shows, with a short detail saying why.

    | answer                                                                    | state    |
    |---------------------------------------------------------------------------|----------|
    | 200 and "status" is "ok" or "healthy" (Grafana: "database" is "ok")        | up       |
    | cdb_ws (judge ws): status healthy but ws_connected/redis_connected not true | degraded |
    | "status": "degraded" (cdb_market, with 503 or 200)                         | degraded |
    | any other status ("error", "stopped", missing), or healthy with non-200   | down     |
    | a body that is not a JSON object (Prometheus's one healthy text aside)    | down     |
    """
    text = _plain_text(body)
    if text in HEALTHY_TEXTS:
        if status_code == 200:
            return Verdict(Health.UP, text)
        return Verdict(Health.DOWN, f"HTTP {status_code}: {text}")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return Verdict(Health.DOWN, f"HTTP {status_code}, body is not JSON", _snippet(body))
    if not isinstance(data, dict):
        return Verdict(Health.DOWN, f"HTTP {status_code}, body is not a JSON object", _snippet(body))
    verdict = _judge_status(data, status_code)
    if verdict.state == Health.UP and service.judge == Judge.WS:
        return _judge_ws_flags(data)
    return verdict


def _judge_status(data: dict[str, Any], status_code: int) -> Verdict:
    # Grafana's /api/health has no "status": its "database" field says "ok" (or "failing", with 503).
    key = "status" if "status" in data or "database" not in data else "database"
    if key not in data:
        return Verdict(Health.DOWN, f"HTTP {status_code}, no status in the body", _reason(data))
    value = data[key]
    shown = f"{key} {_short(value)}"
    if isinstance(value, str) and value in HEALTHY_VALUES:
        if status_code == 200:
            return Verdict(Health.UP, shown)
        return Verdict(Health.DOWN, f"HTTP {status_code} although {shown}", _reason(data))
    state = Health.DEGRADED if value == "degraded" else Health.DOWN
    return Verdict(state, f"{shown} (HTTP {status_code})", _reason(data))


def _judge_ws_flags(data: dict[str, Any]) -> Verdict:
    # cdb_ws always answers 200 "healthy": only its flags say whether it is connected.
    problems = [
        f"{flag} {_short(data[flag]) if flag in data else 'missing'}"
        for flag in WS_FLAGS
        if data.get(flag) is not True
    ]
    if problems:
        return Verdict(Health.DEGRADED, "status healthy but " + ", ".join(problems), _reason(data))
    age = data.get("last_message_age_ms")
    if isinstance(age, int):
        return Verdict(Health.UP, f"status healthy, last message {age} ms ago")
    return Verdict(Health.UP, "status healthy")


def judge_reply(protocol: str, reply: bytes) -> Verdict:
    """The state a TCP service's first answer shows (`protocol` as in TCP_PROBES)."""
    if protocol in ("postgres", "postgresql"):
        if reply[:1] in (b"S", b"N"):
            return Verdict(Health.UP, "PostgreSQL answers")
        return Verdict(Health.DOWN, "not a PostgreSQL answer", _snippet(reply))
    if protocol == "redis":
        if reply.startswith(b"+PONG"):
            return Verdict(Health.UP, "PONG")
        if reply.startswith(b"-NOAUTH"):  # CDB's Redis needs auth: answering at all proves it is up
            return Verdict(Health.UP, "answers PING (authentication required)")
        for busy in (b"-LOADING", b"-BUSY", b"-MASTERDOWN"):
            if reply.startswith(busy):
                return Verdict(Health.DEGRADED, f"Redis answers {busy[1:].decode()}", _snippet(reply))
        return Verdict(Health.DOWN, "not a Redis answer", _snippet(reply))
    return Verdict(Health.UP, "accepts TCP connections")


def _reason(data: dict[str, Any]) -> str:
    """The service's own words about what is wrong (regime's last_error, market's detail list)."""
    for key in REASON_FIELDS:
        if data.get(key):
            return _short(data[key], 200)
    return ""


def _short(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snippet(body: bytes) -> str:
    if not body:
        return "(empty)"
    return _short(body[:80].decode("utf-8", "replace").replace("\n", " ").strip() or "(blank)", 60)


def _plain_text(body: bytes) -> str:
    return body.decode("utf-8", "replace").strip() if len(body) < 100 else ""


# --- Checking: network only, no database. ---


@dataclass(frozen=True)
class CheckResult:
    state: str
    detail: str
    latency_ms: float
    checked_at: datetime
    reply: str = ""  # what the service answered, apart from the verdict (see Verdict)


def check_one(service: MonitoredService) -> CheckResult:
    """Check one service now; its timeout bounds the whole check (connect, answer, body)."""
    return check_many([service])[0]


def check_many(services: Sequence[MonitoredService]) -> list[CheckResult]:
    """Check the services concurrently. Each is bounded by its own timeout, so a slow service costs
    its timeout and delays none of the others: the whole batch takes about the largest timeout."""
    return _run(_check_all(services))


async def _check_all(services: Sequence[MonitoredService]) -> list[CheckResult]:
    headers = {"User-Agent": "cdb-incident-console/health", "Accept": "application/json"}
    async with httpx.AsyncClient(headers=headers, **outbound.CLIENT_OPTIONS) as client:
        return list(await asyncio.gather(*(_check(service, client) for service in services)))


async def _check(service: MonitoredService, client: httpx.AsyncClient) -> CheckResult:
    checked_at = timezone.now()
    started = time.perf_counter()
    # Capped here too: a timeout written to the database past the admin's checks still cannot hold
    # the whole poll for minutes.
    timeout = outbound.bounded_timeout(service.timeout)
    try:
        outbound.check_url(service.url)
        async with asyncio.timeout(timeout):
            if service.check_kind == CheckKind.TCP:
                verdict = await _probe_tcp(service.url)
            else:
                verdict = await _probe_http(service, client, timeout)
    except outbound.HostNotAllowed as exc:
        verdict = Verdict(Health.DOWN, f"not checked: {exc}")
    except (TimeoutError, httpx.TimeoutException):
        verdict = Verdict(Health.DOWN, f"no answer within {timeout:g} s")
    except (ValueError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        verdict = Verdict(Health.DOWN, f"bad URL: {exc}")
    except (httpx.HTTPError, OSError) as exc:
        verdict = Verdict(Health.DOWN, f"cannot connect: {_error(exc)}")
    except Exception as exc:  # a bug must not stop the other checks: the service shows as down
        log.warning("Health check of %s failed", service.name, exc_info=True)
        verdict = Verdict(Health.DOWN, f"check failed: {_error(exc)}")
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(
        verdict.state, verdict.detail[:DETAIL_MAX], latency_ms, checked_at, verdict.reply[:REPLY_MAX]
    )


async def _probe_http(service: MonitoredService, client: httpx.AsyncClient, timeout: float) -> Verdict:
    async with client.stream("GET", service.url, timeout=timeout) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= MAX_BODY:
                break
    return judge(service, response.status_code, bytes(body[:MAX_BODY]))


async def _probe_tcp(url: str) -> Verdict:
    protocol, host, port = tcp_target(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if not TCP_PROBES[protocol]:
            return judge_reply(protocol, b"")
        writer.write(TCP_PROBES[protocol])
        await writer.drain()
        return judge_reply(protocol, await reader.read(256))
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


def tcp_target(url: str) -> tuple[str, str, int]:
    """(protocol, host, port) from `host:port` or `tcp|postgres|redis://host:port`."""
    url = url.strip()
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme not in TCP_PROBES or not parts.hostname or parts.port is None:
        raise ValueError(f"TCP target {url!r}: use host:port or tcp|postgres|redis://host:port")
    return parts.scheme, parts.hostname, parts.port


def _error(exc: BaseException) -> str:
    """The first OS error in the chain, in plain words ("Connection refused"), else the exception."""
    node: BaseException = exc
    for _ in range(10):  # a bounded walk down the chain
        if isinstance(node, OSError) and node.errno:
            return os.strerror(node.errno) if node.errno > 0 else str(node.strerror)
        cause = node.__cause__ or node.__context__
        if cause is None:
            break
        node = cause
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _run[T](coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when called from a thread whose event loop is running (then in a helper)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop_running = False
    else:
        loop_running = True
    if not loop_running:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --- Recording: one short transaction per service; damping; transitions become signals. ---


@dataclass(frozen=True)
class Transition:
    state: str
    since: datetime  # the first check of the streak that earned the new state
    checks: int


class HealthPollError(RuntimeError):
    pass


@transaction.atomic
def health_record(*, service_id: int, result: CheckResult) -> str | None:
    """Store one check of a service and move its damped state; a transition becomes one signal.

    1. Lock the service row, so concurrent polls (a redelivered task) count each result once.
    2. Store the result; `failures` and `successes` are the current unhealthy and healthy streaks.
    3. Decide whether the streak earned a new damped state (`_damped`); if not, nothing else happens.
    4. On a transition, ingest one signal: firing for down/degraded, resolved for up after an
       outage. Its start is the streak's first check, so the signal's dedup key is stable.
    Returns the service's state, or None if it was deleted or disabled meanwhile.
    """
    service = MonitoredService.objects.select_for_update().filter(pk=service_id, enabled=True).first()
    if service is None:
        return None
    HealthResult.objects.create(
        service=service,
        checked_at=result.checked_at,
        status=result.state,
        latency_ms=result.latency_ms,
        detail=result.detail[:DETAIL_MAX],
    )
    counter = {"up": "checks_up", "degraded": "checks_degraded"}.get(str(result.state), "checks_down")
    setattr(service, counter, getattr(service, counter) + 1)
    healthy = result.state == Health.UP
    service.successes = service.successes + 1 if healthy else 0
    service.failures = 0 if healthy else service.failures + 1
    service.last_checked_at = result.checked_at
    service.last_latency_ms = result.latency_ms
    service.last_detail = result.detail[:300]
    service.last_reply = result.reply[:REPLY_MAX]
    previous = service.state
    transition = _damped(service, result.state)
    if transition is not None:
        service.state = transition.state
    service.save(
        update_fields=[
            "state",
            "failures",
            "successes",
            "last_checked_at",
            "last_latency_ms",
            "last_detail",
            "last_reply",
            counter,
        ]
    )
    # unknown → up resolves nothing: it is a fresh service's first healthy streak.
    if transition is not None and not (previous == Health.UNKNOWN and transition.state == Health.UP):
        signals_ingest([transition_alert(service, previous, transition, result.detail)])
    return service.state


def _damped(service: MonitoredService, observed: str) -> Transition | None:
    """The new damped state, if the current streak has just earned one.

    Up needs HEALTH_UP_AFTER healthy results in a row. An unhealthy state needs HEALTH_DOWN_AFTER
    unhealthy results in a row: down if all of them were down, degraded if all were degraded. A mix
    of the two counts as degraded when leaving up (or unknown), and moves nothing between them.
    """
    if observed == service.state:
        return None
    if observed == Health.UP:
        needed = max(1, settings.HEALTH_UP_AFTER)
        if service.successes < needed:
            return None
        return Transition(Health.UP, _recent(service, needed)[-1][1], needed)
    needed = max(1, settings.HEALTH_DOWN_AFTER)
    if service.failures < needed:
        return None
    recent = _recent(service, needed)
    if {state for state, _ in recent} == {observed}:
        target = observed
    elif service.state in (Health.UP, Health.UNKNOWN):
        target = Health.DEGRADED
    else:
        return None
    if target == service.state:
        return None
    return Transition(target, recent[-1][1], needed)


def _recent(service: MonitoredService, count: int) -> list[tuple[str, datetime]]:
    """The newest `count` results (newest first), including the one just stored."""
    return list(
        HealthResult.objects.filter(service=service)
        .order_by("-checked_at", "-id")
        .values_list("status", "checked_at")[:count]
    )


def severity_for(service: MonitoredService, state: str) -> int:
    """The playbook's triage tree: a core-path service down is SEV-1, any other service down SEV-2,
    degraded performance SEV-3 (also on the core path)."""
    if state == Health.DOWN:
        return 1 if service.core else 2
    return 3


def transition_alert(
    service: MonitoredService, previous: str, transition: Transition, detail: str
) -> AlertInput:
    """The signal for one damped transition: firing for down/degraded, resolved for up.

    Every transition of one service is in one group (`health:<name>`): an escalation from degraded
    to down joins the open incident and raises its severity; a recovery goes on its timeline."""
    firing = transition.state != Health.UP
    severity = severity_for(service, transition.state if firing else previous)
    streak = "unhealthy" if firing else "healthy"
    path = "On the core trading path. " if service.core else ""
    return AlertInput(
        source=Source.HEALTH,
        fingerprint=f"health:{service.name}",
        group_key=f"health:{service.name}",
        status=SignalStatus.FIRING if firing else SignalStatus.RESOLVED,
        starts_at=transition.since,
        severity=severity,
        title=f"{service.name} is {transition.state}: {detail}",
        summary=(
            f"{path}{transition.checks} {streak} checks in a row since "
            f"{transition.since:%Y-%m-%d %H:%M:%S} UTC (was {previous}). Checked: {service.url}"
        ),
        labels={
            "service": service.name,
            "state": transition.state,
            "previous": previous,
            "core": "true" if service.core else "false",
        },
        annotations={"detail": detail, "url": service.url},
        links=safe_links(service.url),
        component=service.name,
        incident_type=service.incident_type.slug if service.incident_type else "",
    )


# --- Entry points (Celery tasks call these). ---


def poll_all() -> dict[str, str]:
    """Check every enabled service concurrently, then record each in its own short transaction.

    Services with check kind "none" are not polled. A service that cannot be recorded is logged and
    the others are still recorded; the run then raises, so the task shows the failure.
    Returns {name: damped state}.
    """
    services = list(MonitoredService.objects.filter(enabled=True).exclude(check_kind=CheckKind.NONE))
    results = check_many(services)
    states: dict[str, str] = {}
    failed: list[str] = []
    for service, result in zip(services, results, strict=True):
        try:
            state = health_record(service_id=service.pk, result=result)
        except Exception:
            log.exception("Could not record the health check of %s", service.name)
            failed.append(service.name)
            continue
        if state is not None:
            states[service.name] = str(state)
    heartbeat("health")
    if failed:
        raise HealthPollError(f"health checks not recorded for: {', '.join(failed)}")
    return states


def prune_results() -> int:
    """Keep the newest HEALTH_RESULTS_KEEP results of each service (never fewer than the damping
    window): per service one indexed lookup of the boundary row and one DELETE. Returns rows deleted."""
    keep = max(settings.HEALTH_RESULTS_KEEP, settings.HEALTH_DOWN_AFTER, settings.HEALTH_UP_AFTER, 1)
    deleted = 0
    for service_id in MonitoredService.objects.values_list("pk", flat=True):
        rows = HealthResult.objects.filter(service_id=service_id)
        boundary = list(rows.order_by("-checked_at", "-id").values_list("checked_at", "id")[keep : keep + 1])
        if not boundary:
            continue
        checked_at, pk = boundary[0]
        count, _ = rows.filter(Q(checked_at__lt=checked_at) | Q(checked_at=checked_at, id__lte=pk)).delete()
        deleted += count
    return deleted


# --- The stack as data (detection/data/services.yaml). ---


class ServicesFileError(ValueError):
    pass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    check: str
    core: bool
    port: int | None = None
    path: str = ""
    judge: str = Judge.STATUS
    protocol: str = "tcp"
    timeout: float = 3.0
    incident_type: str = ""

    def url(self, template: str) -> str:
        """The service's URL from a template such as "http://{name}:{port}" (CDB_BASE_URL)."""
        if self.check == CheckKind.NONE:
            return ""
        try:
            base = template.format(name=self.name, port=self.port)
        except (KeyError, IndexError, ValueError) as exc:
            raise ServicesFileError(f"base URL {template!r}: only {{name}} and {{port}} are filled") from exc
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ServicesFileError(f"base URL {template!r} must give http(s)://host:port, not {base!r}")
        try:
            outbound.check_url(base)
        except ValueError as exc:
            raise ServicesFileError(f"base URL {template!r} for {self.name}: {exc}") from exc
        if self.check == CheckKind.TCP:
            return f"{self.protocol}://{parts.netloc.rsplit('@', 1)[-1]}"
        return base.rstrip("/") + self.path


def services_read(path: Path = SERVICES_FILE) -> list[ServiceSpec]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise ServicesFileError(f"{path}: needs a list of services")
    timeout = float(data.get("timeout", 3.0))
    default_type = str(data.get("incident_type") or "")
    specs = []
    for item in data["services"]:
        try:
            spec = ServiceSpec(
                name=item["name"],
                check=item["check"],
                core=bool(item.get("core", False)),
                port=item.get("port"),
                path=item.get("path", ""),
                judge=item.get("judge", Judge.STATUS),
                protocol=item.get("protocol", "tcp"),
                timeout=float(item.get("timeout", timeout)),
                incident_type=str(item.get("incident_type") or default_type),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ServicesFileError(f"{path}: bad service entry {item!r}") from exc
        _validate(path, spec)
        specs.append(spec)
    return specs


def _validate(path: Path, spec: ServiceSpec) -> None:
    problems = []
    if spec.check not in CheckKind.values:
        problems.append(f"check {spec.check!r}")
    if spec.judge not in Judge.values:
        problems.append(f"judge {spec.judge!r}")
    if spec.check == CheckKind.TCP and spec.protocol not in TCP_PROBES:
        problems.append(f"protocol {spec.protocol!r}")
    if spec.check != CheckKind.NONE and not isinstance(spec.port, int):
        problems.append("a port")
    if spec.check == CheckKind.HTTP_JSON and not spec.path.startswith("/"):
        problems.append("a path starting with /")
    if not outbound.MIN_TIMEOUT <= spec.timeout <= outbound.max_timeout():
        problems.append(f"a timeout from {outbound.MIN_TIMEOUT:g} to {outbound.max_timeout():g} s")
    if problems:
        raise ServicesFileError(f"{path}: {spec.name} needs {', '.join(problems)}")


@transaction.atomic
def services_load(
    *, path: Path = SERVICES_FILE, base_url: str | None = None, enabled: bool | None = None
) -> dict[str, int]:
    """Create the file's services that are missing; keep what an admin edited on the others.

    - A new service gets its URL from `base_url` (else settings.CDB_BASE_URL) and is enabled only
      when `enabled` is True: a laptop without CDB must not open SEV-1 incidents every poll.
    - An existing service keeps its URL, enabled flag, check, judge, core flag, incident type and
      timeout, except that a given `base_url` rewrites its URL, a given `enabled` sets its flag, and
      an empty incident type takes the file's.
    - Every incident type named must be in the playbook (load it first), else nothing is loaded.
    Idempotent. Returns {"created": n, "updated": n, "unchanged": n}.
    """
    specs = services_read(path)
    types = {t.slug: t for t in IncidentType.objects.all()}
    for spec in specs:
        if spec.incident_type and spec.incident_type not in types:
            raise ServicesFileError(
                f"{path}: {spec.name} names an unknown incident type {spec.incident_type!r} "
                "(load the playbook first: manage.py load_playbook)"
            )
    template = base_url or settings.CDB_BASE_URL
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for spec in specs:
        url = spec.url(template)
        asked: dict[str, Any] = {"url": url} if base_url else {}
        if enabled is not None:
            asked["enabled"] = enabled
        current = MonitoredService.objects.filter(name=spec.name).first()
        kind = types.get(spec.incident_type)
        if current is not None and current.incident_type_id is None and kind is not None:
            asked["incident_type"] = kind
        _, created = MonitoredService.objects.update_or_create(
            name=spec.name,
            defaults=asked,
            create_defaults={
                "url": url,
                "enabled": bool(enabled),
                "check_kind": spec.check,
                "judge": spec.judge,
                "core": spec.core,
                "timeout": spec.timeout,
                "incident_type": kind,
            },
        )
        changed = current is not None and any(getattr(current, k) != v for k, v in asked.items())
        counts["created" if created else "updated" if changed else "unchanged"] += 1
    return counts
