"""Property-based fuzzing of both webhook bodies: whatever a sender posts, the answer is 200, 400, 413 or
415, never a server error; a 400 says what is wrong in JSON; what is accepted is stored.

Three kinds of body per endpoint, 1,000 examples in all: arbitrary JSON (and non-JSON bytes), valid
payloads shaped like CDB's real alerts (upstream prometheus/alerts.yml, grafana/*.yml), and those
payloads with mutated fields (wrong types, huge or unicode or NUL text, bad times, missing and extra
keys, nested junk, a wrong content type, an oversized body). A fourth property puts one hostile value
(NUL, a lone surrogate, text that is not a URL, an odd JSON type, too much text) in each field the
parser reads, Grafana's own included: it is stored, or refused with a 400 naming that field, never
accepted by the parser and then refused by the database.

Inputs that once produced a server error (fuzzing found them) are pinned by the tests at the end;
the random strategies still generate their kind, so each property keeps hunting for new failures.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from detection.models import Signal
from detection.services import signals_route

pytestmark = pytest.mark.django_db

TOKENS = {"alertmanager": "fuzz-alertmanager-token", "grafana": "fuzz-grafana-token"}
VERSION = {"alertmanager": "4", "grafana": "1"}
ALLOWED = {200, 400, 413, 415}
FUZZ = hsettings(
    max_examples=1000,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the repository; failures print their example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def tokens(settings: Any) -> None:
    settings.WEBHOOK_TOKENS = dict(TOKENS)


# --- Strategies ---------------------------------------------------------------------------------

# Any text a JSON body can carry: NUL, astral planes and lone surrogates included (Hypothesis leaves
# surrogates out of text unless asked).
TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=40)
# Readable text for valid payloads: no NUL, no control characters, never blank.
CLEAN = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() != "")
# A single-element alphabet drawn into a huge string is cheap; one over the 10,000-character limit.
HUGE = st.tuples(st.sampled_from("xé😀<"), st.integers(10_001, 12_000)).map(lambda t: t[0] * t[1])

JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
ARBITRARY_JSON = st.recursive(
    JSON_SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=16,
)

ZONES = st.sampled_from(
    [
        UTC,
        dt_timezone(timedelta(hours=2)),
        dt_timezone(timedelta(hours=-5)),
        dt_timezone(timedelta(hours=5, minutes=45)),
    ]
)
TIMES = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=ZONES).map(
    lambda d: d.isoformat().replace("+00:00", "Z")
)
GO_TIMES = st.sampled_from(
    ["2026-01-05T10:00:00.123456789Z", "2026-01-05T10:00:00Z", "2026-01-05T12:00:00+02:00"]
)
BAD_TIMES = (
    st.sampled_from(
        [
            "",
            "now",
            "2026-01-05",
            "2026-01-05T10:00:00",  # no zone
            "2026-13-45T10:00:00Z",
            "2026-01-05T25:61:00Z",
            "2026-01-05T10:00:00+25:00",
            "2026-02-30T10:00:00Z",
            "10:00:00Z",
            "١٢٣٤-01-05T10:00:00Z",
            "2026-01-05T10:00:00Z\x00",
            "9" * 80,
        ]
    )
    | TEXT
)
URLS = (
    st.sampled_from(
        [
            "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D~%22cdb_.*%22%7D+%3D%3D+0&g0.tab=1",
            "https://grafana.example/d/cdb/overview?orgId=1",
            "javascript:alert(1)",
            " JaVaScRiPt:alert(2)",
            "data:text/html,<script>alert(3)</script>",
            "//evil.example/x",
            "http://",
            "",
        ]
    )
    | CLEAN
)  # never NUL: a URL field is text like any other, and NUL is refused everywhere
SEVERITIES = st.sampled_from(["critical", "high", "warning", "info", "CRITICAL ", "page", ""])
# CDB's real rule names and the services they watch (upstream prometheus/alerts.yml, grafana/*.yml).
ALERTNAMES = (
    st.sampled_from(
        [
            "ServiceDown",
            "MinimalServiceDown",
            "CircuitBreakerTriggered",
            "DatabaseConnectionLost",
            "RedisConnectionLost",
            "HighCPUUsage",
            "HighMemoryUsage",
            "CDB - High Error Rate (>5%)",
            "<script>alert(1)</script>",
        ]
    )
    | CLEAN
)
JOBS = st.sampled_from(["cdb_execution", "cdb_signal", "cdb_risk", "cdb_ws", "cdb_db_writer", "cdb_candles"])
FINGERPRINTS = st.uuids().map(lambda u: u.hex[:16])


def alert_strategy(source: str) -> st.SearchStrategy[dict[str, Any]]:
    grafana = (
        {
            "dashboardURL": URLS,
            "panelURL": URLS,
            "silenceURL": URLS,
            "values": st.dictionaries(st.sampled_from("ABC"), st.floats(allow_nan=False)),
            "valueString": CLEAN,
        }
        if source == "grafana"
        else {}
    )
    return st.fixed_dictionaries(
        {
            "status": st.sampled_from(["firing", "resolved"]),
            "labels": st.fixed_dictionaries(
                {"alertname": ALERTNAMES, "severity": SEVERITIES},
                optional={"job": JOBS, "service": JOBS, "instance": CLEAN, "env": st.just("prod")},
            ),
            "annotations": st.fixed_dictionaries(
                {}, optional={"summary": CLEAN, "description": CLEAN, "runbook_url": URLS}
            ),
            "startsAt": TIMES | GO_TIMES,
            "fingerprint": FINGERPRINTS,
        },
        optional={
            "endsAt": st.sampled_from(["0001-01-01T00:00:00Z", ""]) | st.none() | TIMES,
            "generatorURL": URLS,
            **grafana,
        },
    )


def payload_strategy(source: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "version": st.just(VERSION[source]),
            "alerts": st.lists(alert_strategy(source), min_size=1, max_size=3),
        },
        optional={
            "groupKey": CLEAN,
            "status": st.sampled_from(["firing", "resolved"]),
            "receiver": st.just("critical-receiver"),
            "groupLabels": st.dictionaries(CLEAN, CLEAN, max_size=2),
            "commonLabels": st.dictionaries(CLEAN, CLEAN, max_size=2),
            "externalURL": URLS,
            "truncatedAlerts": st.integers(0, 3),
            "orgId": st.integers(0, 3),
            "title": CLEAN,
            "message": CLEAN,
        },
    )


JUNK = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | TEXT
    | HUGE
    | st.just("\x00")
    | BAD_TIMES
    | URLS
    | st.lists(JSON_SCALAR, max_size=3)
    | ARBITRARY_JSON
)


@st.composite
def mutated(draw: st.DrawFn, source: str) -> tuple[dict[str, Any], str]:
    """A valid payload with one to four of its containers changed: a key deleted, replaced by junk, or
    junk added. Returns the body and the content type to post it with."""
    payload = draw(payload_strategy(source))
    for _ in range(draw(st.integers(1, 4))):
        alerts = payload.get("alerts")
        alert = draw(st.sampled_from(alerts)) if isinstance(alerts, list) and alerts else None
        containers: list[Any] = [payload]
        if isinstance(alert, dict):
            containers += [alert, *(alert.get(k) for k in ("labels", "annotations"))]
        if isinstance(alerts, list):
            containers.append(alerts)
        target = draw(st.sampled_from([c for c in containers if isinstance(c, dict | list)]))
        op = draw(st.sampled_from(["delete", "replace", "add"]))
        if isinstance(target, list):
            if op == "delete" and target:
                target.pop(draw(st.integers(0, len(target) - 1)))
            elif op == "replace" and target:
                target[draw(st.integers(0, len(target) - 1))] = draw(JUNK)
            else:
                target.append(draw(JUNK))
        elif op in ("delete", "replace") and target:
            key = draw(st.sampled_from(sorted(target)))
            if op == "delete":
                del target[key]
            else:
                target[key] = draw(JUNK)
        else:
            target[draw(TEXT | st.sampled_from(["alertname", "startsAt", "version", "alerts"]))] = draw(JUNK)
    if draw(st.integers(0, 39)) == 17:  # now and then (about 1 in 40), over the size limit
        payload["padding"] = "x" * (django_settings.WEBHOOK_MAX_BYTES + 1)
    content_type = draw(
        st.sampled_from(["application/json"] * 8 + ["application/json; charset=utf-8", "text/plain", ""])
    )
    return payload, content_type


def bodies(source: str) -> st.SearchStrategy[tuple[str, bytes, str]]:
    """(kind, raw body, content type): kind 'valid' must be accepted; the others must not break it."""
    valid = payload_strategy(source).map(lambda p: ("valid", json.dumps(p).encode(), "application/json"))
    arbitrary = ARBITRARY_JSON.map(lambda v: ("arbitrary", json.dumps(v).encode(), "application/json"))
    raw = st.binary(max_size=200).map(lambda b: ("bytes", b, "application/json"))
    broken = mutated(source).map(lambda m: ("mutated", json.dumps(m[0]).encode(), m[1]))
    return st.one_of(valid, arbitrary, raw, broken)


# --- The properties -----------------------------------------------------------------------------


def post(client: Any, source: str, body: bytes, content_type: str) -> Any:
    return client.generic(
        "POST",
        reverse(f"detection:{source}"),
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {TOKENS[source]}",
    )


def check(client: Any, source: str, kind: str, body: bytes, content_type: str) -> None:
    response = post(client, source, body, content_type)
    event(f"{kind} → {response.status_code}")  # --hypothesis-show-statistics shows the mix
    assert response.status_code in ALLOWED, (response.status_code, response.content[:300])
    if response.status_code != 200:
        message = json.loads(response.content)["error"]
        assert isinstance(message, str) and message.strip()
    if kind == "valid":
        assert response.status_code == 200, response.content[:300]
    if response.status_code == 200:
        result = json.loads(response.content)
        alerts = json.loads(body)["alerts"]
        assert result["received"] == len(alerts) == result["new"] + result["duplicates"]
        for alert in alerts:
            stored = Signal.objects.filter(
                source=source, fingerprint=alert["fingerprint"][:200], status=alert["status"]
            )
            assert stored.exists(), alert
        # What was accepted is routed: a stored alert the router choked on would hold up every
        # alert behind it.
        signals_route()
        assert not Signal.objects.filter(routed_at__isnull=True).exists()
        assert not Signal.objects.filter(status="firing", incident__isnull=True).exists()


REAL_ALERTMANAGER = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="ServiceDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "critical-receiver",
    "groupLabels": {"alertname": "ServiceDown"},
    "commonLabels": {"alertname": "ServiceDown", "severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "ServiceDown",
                "severity": "critical",
                "job": "cdb_risk",
                "instance": "cdb_risk:8002",
            },
            "annotations": {
                "summary": "Service cdb_risk is down",
                "description": "cdb_risk:8002 has been down for more than 1 minute.",
            },
            "startsAt": "2026-01-05T10:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D~%22cdb_.%2A%22%7D+%3D%3D+0&g0.tab=1",
            "fingerprint": "4c4b9d2d5e0f7a11",
        }
    ],
}
REAL_GRAFANA = {
    "receiver": "cdb-console",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "CDB - High Error Rate (>5%)",
                "severity": "warning",
                "grafana_folder": "CDB Alerts",
            },
            "annotations": {
                "summary": "CDB - High Error Rate (>5%)",
                "description": "Order rejection rate is above 5% for the last 5 minutes.",
            },
            "startsAt": "2026-01-05T10:00:00+01:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://grafana.example/alerting/grafana/cdb_error_rate_high/view?orgId=1",
            "fingerprint": "a1b2c3d4e5f60718",
            "silenceURL": "https://grafana.example/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"A": 7.5, "C": 1},
            "valueString": "[ var='A' labels={} value=7.5 ]",
        }
    ],
    "groupLabels": {"alertname": "CDB - High Error Rate (>5%)"},
    "commonLabels": {"alertname": "CDB - High Error Rate (>5%)"},
    "commonAnnotations": {},
    "externalURL": "https://grafana.example/",
    "version": "1",
    "groupKey": '{}:{alertname="CDB - High Error Rate (>5%)"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:1] CDB - High Error Rate (>5%)",
    "state": "alerting",
    "message": "**Firing**",
}


def oversized(payload: dict[str, Any]) -> bytes:
    return json.dumps({**payload, "padding": "x" * django_settings.WEBHOOK_MAX_BYTES}).encode()


@FUZZ
@given(case=bodies("alertmanager"))
@example(case=("mutated", oversized(REAL_ALERTMANAGER), "application/json"))
@example(case=("valid", json.dumps(REAL_ALERTMANAGER).encode(), "application/json"))
@example(case=("mutated", json.dumps(REAL_GRAFANA).encode(), "application/json"))  # wrong version
@example(case=("bytes", b"\xff\xfe\x00", "application/json"))
def test_alertmanager_never_answers_a_server_error(client, tokens, case):
    check(client, "alertmanager", *case)


@FUZZ
@given(case=bodies("grafana"))
@example(case=("mutated", oversized(REAL_GRAFANA), "application/json"))
@example(case=("valid", json.dumps(REAL_GRAFANA).encode(), "application/json"))
@example(case=("mutated", json.dumps(REAL_ALERTMANAGER).encode(), "application/json"))  # wrong version
@example(case=("bytes", b"", "application/json"))
def test_grafana_never_answers_a_server_error(client, tokens, case):
    check(client, "grafana", *case)


# --- One hostile value in any field the parser reads ------------------------------------------

# What PostgreSQL refuses or Python cannot parse, each in the shape a sender could put it.
HOSTILE_TEXT = (
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "x\udfff",
            "http://grafana:3000/d/\x00",
            "http://grafana:3000/\ud83d",
            "http://[::1",
            "http://[",
            "https://]x[/",
            "http://a:99999999/",
            "   ",
            "",
            "\u2028\u2029",
            "😀" * 3,
        ]
    )
    | TEXT
    | HUGE
)
ODD = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.lists(JSON_SCALAR, max_size=3)
    | st.dictionaries(TEXT, JSON_SCALAR, max_size=3)
)
ALERT_FIELDS = ["status", "startsAt", "endsAt", "generatorURL", "fingerprint", "labels", "annotations"]
GRAFANA_FIELDS = ["dashboardURL", "panelURL", "silenceURL", "values", "valueString"]
MAP_KEYS = ["alertname", "severity", "job", "service", "instance", "summary", "description", "runbook_url"]


@st.composite
def hostile(draw: st.DrawFn, source: str) -> tuple[dict[str, Any], int, str]:
    """A valid payload with one hostile value (or key) in one field of one alert. Returns the payload,
    the alert's index and the top-level field that was changed."""
    payload = draw(payload_strategy(source))
    index = draw(st.integers(0, len(payload["alerts"]) - 1))
    alert = payload["alerts"][index]
    field = draw(st.sampled_from(ALERT_FIELDS + (GRAFANA_FIELDS if source == "grafana" else [])))
    value = draw(HOSTILE_TEXT | ODD)
    if field in ("labels", "annotations") and draw(st.booleans()):
        mapping = alert[field]
        if draw(st.booleans()):
            mapping[draw(st.sampled_from(MAP_KEYS))] = value  # a hostile value
        else:
            mapping[draw(HOSTILE_TEXT)] = draw(CLEAN)  # a hostile key
    else:
        alert[field] = value
    return payload, index, field


FIELD_FUZZ = hsettings(FUZZ, max_examples=300)


@pytest.mark.parametrize("source", ["alertmanager", "grafana"])
def test_a_hostile_value_in_any_field_is_stored_or_refused_naming_the_field(client, tokens, source):
    """No value can pass parsing and then fail the INSERT (a 503 the sender would retry for ever): it is
    either stored (200, and routed) or refused with a 400 whose message starts with the field's path."""

    @FIELD_FUZZ
    @given(case=hostile(source))
    def run(case: tuple[dict[str, Any], int, str]) -> None:
        payload, index, field = case
        body = json.dumps(payload).encode()
        response = post(client, source, body, "application/json")
        event(f"{field} → {response.status_code}")
        assert response.status_code in (200, 400), (field, response.status_code, response.content[:300])
        if response.status_code == 400:
            error = json.loads(response.content)["error"]
            assert error.startswith(f"alerts[{index}].{field}"), (field, error)
        else:
            check(client, source, "accepted", body, "application/json")  # duplicates now, and routed

    run()


def test_the_strategies_produce_what_the_properties_rely_on(client, tokens):
    """A sanity check on the generators themselves: valid bodies are accepted, each kind occurs."""
    kinds: set[str] = set()

    @hsettings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=bodies("grafana"))
    def run(case: tuple[str, bytes, str]) -> None:
        kinds.add(case[0])
        check(client, "grafana", *case)

    run()
    assert kinds == {"valid", "arbitrary", "bytes", "mutated"}


# --- Known server errors (in detection/webhooks.py and views._webhook; not this change's files) -


def _one_alert(**changes: Any) -> bytes:
    payload = json.loads(json.dumps(REAL_ALERTMANAGER))
    alert = payload["alerts"][0]
    for key, value in changes.items():
        if key in ("alertname", "label_key"):
            alert["labels"] |= {"alertname": value} if key == "alertname" else {value: "v"}
        else:
            alert[key] = value
    return json.dumps(payload).encode()


KNOWN = {
    # A lone UTF-16 surrogate is valid JSON but cannot be encoded for PostgreSQL: 500.
    "surrogate-in-a-label-value": _one_alert(alertname="ServiceDown\ud800"),
    # ...and in a key, PostgreSQL rejects the JSON: 503, which Alertmanager retries for ever.
    "surrogate-in-a-label-key": _one_alert(label_key="\udfff"),
    # The incident title comes out blank and incident_declare refuses it: 500.
    "whitespace-alertname": _one_alert(alertname="   "),
    # Before year 1 in UTC: PostgreSQL refuses it, 503 (retried for ever).
    "time-before-year-1-utc": _one_alert(startsAt="0001-01-01T00:00:00+14:00"),
    # After year 9999 in UTC: stored (200), then every full read of the row fails.
    "time-after-year-9999-utc": _one_alert(startsAt="9999-12-31T23:59:59-14:00"),
    # json.loads recurses: RecursionError, 500.
    "deeply-nested-json": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_inputs_that_once_broke_the_server_are_400s(tokens, name):
    from django.test import Client

    response = post(Client(raise_request_exception=False), "alertmanager", KNOWN[name], "application/json")
    assert response.status_code == 400, response.status_code
