"""The risk-service stand-in replays CDB's captured HTTP exchanges (docs/cdb/upstream/http-transcripts.md).

Bodies without timestamps are compared byte for byte with the capture. Where the capture has a
timestamp, the reply is compared key by key, and the timestamp is checked for its format
(naive-UTC ISO, microseconds). State files are matched line by line, with timestamps as regexes.
Tests named ``test_cdb_*`` check behaviour the transcripts do not show but CDB's source fixes
(see the module docstring of ``risk_service``).

Plain urllib only. conftest's autouse ``_playbook(db)`` fixture still runs; nothing here uses it.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.standins.risk_service import (
    MSG_CORRUPT,
    MSG_EMPTY,
    MSG_MISSING,
    MSG_READ_ERROR,
    MSG_UNKNOWN,
    KillSwitchDetails,
    RiskServiceStandIn,
    parse_state_text,
    read_state_mid,
    read_state_new,
    render_state,
    temp_path,
    write_activation,
    write_deactivation,
    write_state,
)

TS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{6})?"  # datetime.isoformat(), naive
TIMESTAMP = object()  # in an expected JSON body: "a timestamp string goes here"

JSON = "application/json"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

# -- verbatim from the transcripts --------------------------------------------------------------

G1_HEALTH = b'{"service":"risk_manager","status":"error","version":"0.1.0"}\n'
G1_STATUS = (
    b'{"alerts_generated":0,"last_order_result":null,"order_results_received":0,"orders_approved":0,'
    b'"orders_blocked":0,"orders_rejected_execution":0,"orders_skipped":0,"risk_state":{"circuit_breaker"'
    b':false,"daily_pnl":0.0,"last_prices":{},"open_positions":0,"pending_orders":0,"positions":{},'
    b'"signals_approved":0,"signals_blocked":0,"total_exposure":0.0},"signals_received":0,'
    b'"started_at":null,"status":"initializing"}\n'
)
G1_MISSING = b'{"activated_at":null,"active":false,"message":"State file missing","reason":null}\n'
G1_METRICS = """\
# HELP signals_received_total Signals empfangen (Redis PubSub)
# TYPE signals_received_total counter
signals_received_total 0

# HELP orders_approved_total Orders freigegeben
# TYPE orders_approved_total counter
orders_approved_total 0

# HELP orders_blocked_total Orders blockiert (Risk Checks)
# TYPE orders_blocked_total counter
orders_blocked_total 0

# HELP orders_skipped_total Orders übersprungen (qty=0, parse errors)
# TYPE orders_skipped_total counter
orders_skipped_total 0

# HELP circuit_breaker_active Circuit Breaker Status
# TYPE circuit_breaker_active gauge
circuit_breaker_active 0

# HELP order_results_received_total Anzahl verarbeiteter Order-Result Events
# TYPE order_results_received_total counter
order_results_received_total 0

# HELP orders_rejected_execution_total Abgelehnte Orders durch Execution-Service
# TYPE orders_rejected_execution_total counter
orders_rejected_execution_total 0

# HELP risk_pending_orders_total Anzahl offener Auftragsbestätigungen
# TYPE risk_pending_orders_total gauge
risk_pending_orders_total 0

# HELP risk_total_exposure_value Gesamtposition (Notional)
# TYPE risk_total_exposure_value gauge
risk_total_exposure_value 0.0

# HELP risk_reduce_only_approved_total Reduce-only SELL orders approved while over exposure limit
# TYPE risk_reduce_only_approved_total counter
risk_reduce_only_approved_total 0

# HELP risk_proactive_unwind_triggered_total Proactive auto-unwind triggers (SELL orders generated when over limit)
# TYPE risk_proactive_unwind_triggered_total counter
risk_proactive_unwind_triggered_total 0

# HELP risk_alerts_generated_total Alerts published to alerts topic
# TYPE risk_alerts_generated_total counter
risk_alerts_generated_total 0

# HELP risk_kill_switch_active Kill-switch state (1=active/trading halted, 0=inactive/unknown)
# TYPE risk_kill_switch_active gauge
risk_kill_switch_active 0
"""  # noqa: E501 (verbatim capture)
PAGE_405 = (
    b"<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n"
    b"<p>The method is not allowed for the requested URL.</p>\n"
)
PAGE_500 = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to "
    b"complete your request. Either the server is overloaded or there is an error in the application."
    b"</p>\n"
)
G6_STATUS = (
    b'{"alerts_generated":1,"last_order_result":null,"order_results_received":0,"orders_approved":0,'
    b'"orders_blocked":1,"orders_rejected_execution":0,"orders_skipped":0,"risk_state":{"circuit_breaker"'
    b':false,"daily_pnl":0.0,"last_prices":{},"open_positions":0,"pending_orders":0,"positions":{},'
    b'"signals_approved":0,"signals_blocked":1,"total_exposure":0.0},"signals_received":1,'
    b'"started_at":"2026-11-26T21:09:20.758512","status":"running"}\n'
)
G9_KILL_SWITCH = (
    b'{"activated_at":null,"active":false,"message":"Deactivated by d4-teardown: delta4 verify done",'
    b'"reason":null}\n'
)

# State-file contents for the "file manipulated on disk" cases of G.2 and G.5. The transcripts name
# the cases, not the bytes; these are the smallest files that give the captured answers under both
# readers (e.g. "unknown token" has no message key, hence [M]'s "Unknown").
FILE_EMPTY = ""
FILE_GARBAGE = "this is not a state file\n"
FILE_UPPERCASE = "state=ACTIVE\nreason=manual\nmessage=x\n"
FILE_UNKNOWN_TOKEN = "state=halted\n"
FILE_CRLF = (
    "state=active\r\nreason=manual\r\nmessage=crlf\r\nactivated_at=2026-01-01T00:00:00\r\n"
    "updated_at=2026-01-01T00:00:00\r\n"
)
FILE_PAGER = (
    "state=active\nreason=pager\nmessage=m\nactivated_at=2026-01-01T00:00:00\n"
    "updated_at=2026-01-01T00:00:00\n"
)


# -- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str | None
    body: bytes
    headers: Message

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str, url: str, body: bytes | None = None, *, content_type: str | None = None, timeout: float = 5
) -> Reply:
    assert url.startswith("http://127.0.0.1:"), url  # only ever the stand-in
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Reply(response.status, response.headers["Content-Type"], response.read(), response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers["Content-Type"], error.read(), error.headers)


def get(svc: RiskServiceStandIn, path: str) -> Reply:
    return call("GET", svc.url + path)


def post_json(svc: RiskServiceStandIn, path: str, payload: Any, *, timeout: float = 5) -> Reply:
    return call("POST", svc.url + path, json.dumps(payload).encode(), content_type=JSON, timeout=timeout)


def assert_json(reply: Reply, expected: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """Status, content type, Flask's jsonify layout (sorted keys, compact, LF) and the body, where
    ``TIMESTAMP`` matches any naive ISO timestamp."""
    assert (reply.status, reply.content_type) == (status, JSON), reply.body
    body: dict[str, Any] = reply.json()
    assert reply.body == (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert body.keys() == expected.keys()
    for key, want in expected.items():
        if want is TIMESTAMP:
            assert isinstance(body[key], str) and re.fullmatch(TS, body[key]), (key, body[key])
        else:
            assert body[key] == want, (key, body[key], want)
    return body


def assert_exact(reply: Reply, body: bytes, status: int = 200, content_type: str = JSON) -> None:
    assert (reply.status, reply.content_type, reply.body) == (status, content_type, body)


def assert_state_file(path: Path, *lines: str) -> list[str]:
    """The file is exactly these lines, each LF-terminated; ``{TS}`` in a line is a timestamp.
    Returns the timestamps matched, in order."""
    pattern = "".join(re.escape(line).replace(re.escape("{TS}"), f"({TS})") + "\n" for line in lines)
    content = path.read_text(encoding="utf-8")
    match = re.fullmatch(pattern, content)
    assert match, f"state file:\n{content!r}\ndoes not match:\n{lines!r}"
    return [group for group in match.groups() if group is not None and re.fullmatch(TS, group)]


def metric(svc: RiskServiceStandIn, name: str) -> str:
    reply = get(svc, "/metrics")
    assert (reply.status, reply.content_type) == (200, TEXT)
    samples = [line for line in reply.body.decode().splitlines() if line.startswith(f"{name} ")]
    assert len(samples) == 1
    return samples[0].split(" ", 1)[1]


class FixedClock:
    def __init__(self, value: datetime) -> None:
        self.value = value

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    """``<tmp>/kill_switch/.cdb_kill_switch.state``, as on the stack's shared volume."""
    directory = tmp_path / "kill_switch"
    directory.mkdir()
    return directory / ".cdb_kill_switch.state"


@pytest.fixture
def mid(state_path: Path) -> Iterator[RiskServiceStandIn]:
    with RiskServiceStandIn(state_path, "mid") as svc:
        yield svc


@pytest.fixture
def new(state_path: Path) -> Iterator[RiskServiceStandIn]:
    with RiskServiceStandIn(state_path, "new") as svc:
        yield svc


# -- G.1 [M] Tier 1 ----------------------------------------------------------------------------


def test_g1_health_and_status_before_the_manager_runs(mid: RiskServiceStandIn) -> None:
    mid.set_stats(status="initializing", started_at=None)
    assert_exact(get(mid, "/health"), G1_HEALTH)
    assert_exact(get(mid, "/status"), G1_STATUS)


def test_g1_g3_missing_file_reads_inactive_and_is_not_created(
    mid: RiskServiceStandIn, state_path: Path
) -> None:
    assert_exact(get(mid, "/kill-switch"), G1_MISSING)
    assert metric(mid, "risk_kill_switch_active") == "0"
    assert list(state_path.parent.iterdir()) == []  # G.3 "files after GET:" (nothing)


def test_g1_metrics_exposition_verbatim(mid: RiskServiceStandIn) -> None:
    reply = get(mid, "/metrics")
    assert (reply.status, reply.content_type) == (200, TEXT)
    assert reply.body.decode("utf-8") == G1_METRICS


def test_g1_activate_deactivate_cycle(mid: RiskServiceStandIn, state_path: Path) -> None:
    reply = post_json(
        mid, "/kill-switch/activate", {"reason": "manual", "message": "Dashboard drill", "operator": "alice"}
    )
    body = assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "Dashboard drill (operator: alice)",
            "reason": "manual",
        },
    )
    activated_at, updated_at = assert_state_file(
        state_path,
        "state=active",
        "reason=manual",
        "message=Dashboard drill (operator: alice)",
        "activated_at={TS}",
        "updated_at={TS}",
    )
    assert body["activated_at"] == activated_at <= updated_at  # two clock reads, in this order
    assert_json(
        get(mid, "/kill-switch"),
        {
            "activated_at": activated_at,
            "active": True,
            "message": "Dashboard drill (operator: alice)",
            "reason": "manual",
        },
    )
    assert metric(mid, "risk_kill_switch_active") == "1"

    # An unknown reason silently becomes "manual".
    reply = post_json(
        mid, "/kill-switch/activate", {"reason": "not_a_reason", "message": "x", "operator": "bob"}
    )
    assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "x (operator: bob)",
            "reason": "manual",
        },
    )
    assert_state_file(
        state_path,
        "state=active",
        "reason=manual",
        "message=x (operator: bob)",
        "activated_at={TS}",
        "updated_at={TS}",
    )
    before_errors = state_path.read_bytes()

    reply = post_json(mid, "/kill-switch/activate", {"reason": "manual", "message": "no operator"})
    assert_exact(reply, b'{"error":"operator required"}\n', 400)
    # curl -d without -H: form-encoded, so the body is not read at all.
    reply = call("POST", mid.url + "/kill-switch/activate", b"not json")
    assert_exact(reply, b'{"error":"operator required"}\n', 400)
    reply = post_json(mid, "/kill-switch/deactivate", {"operator": "alice"})
    assert_exact(reply, b'{"error":"operator and justification required"}\n', 400)
    assert state_path.read_bytes() == before_errors

    reply = post_json(
        mid,
        "/kill-switch/deactivate",
        {"operator": "alice", "justification": "Root cause fixed; verified health"},
    )
    assert_exact(reply, b'{"active":false,"deactivated":true}\n')
    assert_state_file(
        state_path,
        "state=inactive",
        "reason=none",
        "message=Deactivated by alice: Root cause fixed; verified health",
        "activated_at=none",
        "updated_at={TS}",
    )
    assert_exact(
        get(mid, "/kill-switch"),
        b'{"activated_at":null,"active":false,"message":"Deactivated by alice: Root cause fixed; verified '
        b'health","reason":null}\n',
    )

    reply = post_json(
        mid,
        "/kill-switch/deactivate",
        {"operator": "alice", "justification": "second deactivate (idempotent?)"},
    )
    assert_exact(reply, b'{"active":false,"deactivated":true}\n')


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/kill-switch/activate", "OPTIONS, POST"), ("POST", "/kill-switch", "GET, HEAD, OPTIONS")],
)
def test_g1_wrong_method_is_werkzeugs_405_page(
    mid: RiskServiceStandIn, method: str, path: str, allow: str
) -> None:
    reply = call(method, mid.url + path, b"" if method == "POST" else None)
    assert_exact(reply, PAGE_405, 405, HTML)
    assert reply.headers["Allow"] == allow


# -- G.2 [M] and G.5 [N]: the state file manipulated on disk -------------------------------------

MID_CASES = [
    (
        "empty",
        FILE_EMPTY,
        b'{"activated_at":null,"active":false,"message":"Empty state file","reason":null}\n',
        "0",
    ),
    (
        "garbage",
        FILE_GARBAGE,
        b'{"activated_at":null,"active":false,"message":"Unknown","reason":null}\n',
        "0",
    ),
    (
        "uppercase ACTIVE",
        FILE_UPPERCASE,
        b'{"activated_at":null,"active":false,"message":"x","reason":"manual"}\n',
        "0",
    ),
    (
        "unknown token",
        FILE_UNKNOWN_TOKEN,
        b'{"activated_at":null,"active":false,"message":"Unknown","reason":null}\n',
        "0",
    ),
    (
        "CRLF line endings active",
        FILE_CRLF,
        b'{"activated_at":"2026-01-01T00:00:00","active":true,"message":"crlf","reason":"manual"}\n',
        "1",
    ),
    (
        "unknown reason value in file",
        FILE_PAGER,
        b'{"activated_at":"2026-01-01T00:00:00","active":true,"message":"m","reason":"pager"}\n',
        "1",
    ),
]


@pytest.mark.parametrize(("case", "content", "expected", "gauge"), MID_CASES, ids=[c[0] for c in MID_CASES])
def test_g2_mid_reader_fails_open(
    mid: RiskServiceStandIn, state_path: Path, case: str, content: str, expected: bytes, gauge: str
) -> None:
    state_path.write_bytes(content.encode())
    assert_exact(get(mid, "/kill-switch"), expected)
    assert metric(mid, "risk_kill_switch_active") == gauge


def test_g2_unreadable_then_unwritable_then_missing_again(state_path: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 26, 21, 8, 20, 570509))
    state_path.mkdir()  # "path is a directory (unreadable)"
    with RiskServiceStandIn(state_path, "mid", clock=clock) as svc:
        read_error = {
            "activated_at": "2026-11-26T21:08:20.570509",  # now: the fail-closed branch of [M]
            "active": True,
            "message": "State file read error",
            "reason": "system_error",
        }
        assert_json(get(svc, "/kill-switch"), read_error)
        assert metric(svc, "risk_kill_switch_active") == "1"

        reply = post_json(
            svc, "/kill-switch/deactivate", {"operator": "alice", "justification": "try while unreadable"}
        )
        assert_exact(reply, b'{"active":true,"deactivated":true}\n')

        # The write fails, the reply is 200 anyway: "active" hard-coded, the rest re-read.
        reply = post_json(
            svc, "/kill-switch/activate", {"operator": "alice", "message": "try while unwritable"}
        )
        assert_json(reply, {"activated": True, **read_error})

        state_path.rmdir()  # "missing again"
        assert_exact(get(svc, "/kill-switch"), G1_MISSING)

    # Each failed rename left the temp file; the activation's is the last, 152 bytes as in G.2.
    assert [p.name for p in state_path.parent.iterdir()] == [".cdb_kill_switch.tmp"]
    leftover = state_path.parent / ".cdb_kill_switch.tmp"
    assert leftover.read_bytes() == (
        b"state=active\nreason=manual\nmessage=try while unwritable (operator: alice)\n"
        b"activated_at=2026-11-26T21:08:20.570509\nupdated_at=2026-11-26T21:08:20.570509\n"
    )
    assert leftover.stat().st_size == 152


NEW_CASES = [
    ("empty file", FILE_EMPTY, MSG_EMPTY),
    ("garbage", FILE_GARBAGE, MSG_CORRUPT),
    ("uppercase ACTIVE", FILE_UPPERCASE, "Unknown kill-switch state value: ACTIVE"),
    ("unknown token", FILE_UNKNOWN_TOKEN, "Unknown kill-switch state value: halted"),
    ("directory", None, MSG_READ_ERROR),
]


@pytest.mark.parametrize(("case", "content", "message"), NEW_CASES, ids=[c[0] for c in NEW_CASES])
def test_g5_new_reader_fails_closed(
    new: RiskServiceStandIn, state_path: Path, case: str, content: str | None, message: str
) -> None:
    if content is None:
        state_path.mkdir()
    else:
        state_path.write_bytes(content.encode())
    expected = {"activated_at": TIMESTAMP, "active": True, "message": message, "reason": "system_error"}
    assert_json(get(new, "/kill-switch"), expected)
    assert metric(new, "risk_kill_switch_active") == "1"


def test_g5_new_reader_passes_crlf_and_unknown_reason_like_mid(
    new: RiskServiceStandIn, state_path: Path
) -> None:
    for content, expected, _gauge in (MID_CASES[4][1:], MID_CASES[5][1:]):
        state_path.write_bytes(content.encode())
        assert_exact(get(new, "/kill-switch"), expected)


def test_g4_new_reader_missing_file_fails_closed(new: RiskServiceStandIn, state_path: Path) -> None:
    expected = {"activated_at": TIMESTAMP, "active": True, "message": MSG_MISSING, "reason": "system_error"}
    assert_json(get(new, "/kill-switch"), expected)
    assert metric(new, "risk_kill_switch_active") == "1"
    assert list(state_path.parent.iterdir()) == []  # "files after GET:" (nothing)


def test_g5_explicit_inactive_written_by_deactivate_then_cycle(
    new: RiskServiceStandIn, state_path: Path
) -> None:
    reply = post_json(
        new,
        "/kill-switch/deactivate",
        {"operator": "alice", "justification": "initialise explicit inactive state"},
    )
    assert_exact(reply, b'{"active":false,"deactivated":true}\n')
    assert_state_file(
        state_path,
        "state=inactive",
        "reason=none",
        "message=Deactivated by alice: initialise explicit inactive state",
        "activated_at=none",
        "updated_at={TS}",
    )
    assert_exact(
        get(new, "/kill-switch"),
        b'{"activated_at":null,"active":false,"message":"Deactivated by alice: initialise explicit inactive '
        b'state","reason":null}\n',
    )
    assert metric(new, "risk_kill_switch_active") == "0"

    reply = post_json(
        new, "/kill-switch/activate", {"operator": "alice", "reason": "risk_limit", "message": "v2 drill"}
    )
    body = assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "v2 drill (operator: alice)",
            "reason": "risk_limit",
        },
    )
    assert_json(
        get(new, "/kill-switch"),
        {
            "activated_at": body["activated_at"],
            "active": True,
            "message": "v2 drill (operator: alice)",
            "reason": "risk_limit",
        },
    )
    reply = post_json(new, "/kill-switch/deactivate", {"operator": "alice", "justification": "v2 done"})
    assert_exact(reply, b'{"active":false,"deactivated":true}\n')


# -- G.6 [M] Tier 2 ----------------------------------------------------------------------------


def test_g6_running_manager_health_status_metrics_and_cycle(
    mid: RiskServiceStandIn, state_path: Path
) -> None:
    assert_exact(get(mid, "/health"), b'{"service":"risk_manager","status":"ok","version":"0.1.0"}\n')
    assert_exact(get(mid, "/kill-switch"), G1_MISSING)
    reply = post_json(
        mid,
        "/kill-switch/activate",
        {"reason": "circuit_breaker", "message": "Tier2 drill", "operator": "alice"},
    )
    assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "Tier2 drill (operator: alice)",
            "reason": "circuit_breaker",
        },
    )
    mid.set_stats(
        started_at="2026-11-26T21:09:20.758512", signals_received=1, orders_blocked=1, alerts_generated=1
    )
    mid.set_risk_state(signals_blocked=1)
    assert_exact(get(mid, "/status"), G6_STATUS)
    assert metric(mid, "signals_received_total") == "1"
    assert metric(mid, "orders_blocked_total") == "1"
    assert metric(mid, "circuit_breaker_active") == "0"
    assert metric(mid, "risk_alerts_generated_total") == "1"
    assert metric(mid, "risk_kill_switch_active") == "1"

    reply = post_json(
        mid, "/kill-switch/deactivate", {"operator": "alice", "justification": "Tier2 drill complete"}
    )
    assert_exact(reply, b'{"active":false,"deactivated":true}\n')
    assert_exact(
        get(mid, "/kill-switch"),
        b'{"activated_at":null,"active":false,"message":"Deactivated by alice: Tier2 drill complete",'
        b'"reason":null}\n',
    )
    assert_state_file(
        state_path,
        "state=inactive",
        "reason=none",
        "message=Deactivated by alice: Tier2 drill complete",
        "activated_at=none",
        "updated_at={TS}",
    )


# -- G.7 [M] newline injection and input validation ----------------------------------------------


def test_g7_newline_in_message_injects_state_inactive(mid: RiskServiceStandIn, state_path: Path) -> None:
    reply = post_json(
        mid,
        "/kill-switch/activate",
        {"operator": "alice", "reason": "manual", "message": "halt\nstate=inactive"},
    )
    body = assert_json(
        reply,
        {"activated": True, "activated_at": TIMESTAMP, "active": True, "message": "halt", "reason": "manual"},
    )
    (activated_at, _updated_at) = assert_state_file(
        state_path,
        "state=active",
        "reason=manual",
        "message=halt",
        "state=inactive (operator: alice)",
        "activated_at={TS}",
        "updated_at={TS}",
    )
    assert body["activated_at"] == activated_at
    # The later "state" wins: "inactive (operator: alice)" is not "active", so [M] reads inactive.
    assert_json(
        get(mid, "/kill-switch"),
        {"activated_at": activated_at, "active": False, "message": "halt", "reason": "manual"},
    )
    assert metric(mid, "risk_kill_switch_active") == "0"


def test_g7_empty_message(mid: RiskServiceStandIn, state_path: Path) -> None:
    reply = post_json(mid, "/kill-switch/activate", {"operator": "alice"})
    body = assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "(operator: alice)",  # the reader strips the value of "message= (operator: alice)"
            "reason": "manual",
        },
    )
    (activated_at, _) = assert_state_file(
        state_path,
        "state=active",
        "reason=manual",
        "message= (operator: alice)",
        "activated_at={TS}",
        "updated_at={TS}",
    )
    assert body["activated_at"] == activated_at
    assert get(mid, "/kill-switch").json()["message"] == "(operator: alice)"


def test_g7_message_with_equals_sign(mid: RiskServiceStandIn) -> None:
    reply = post_json(mid, "/kill-switch/activate", {"operator": "alice", "message": "a=b"})
    body = assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "a=b (operator: alice)",
            "reason": "manual",
        },
    )
    assert_json(
        get(mid, "/kill-switch"),
        {
            "activated_at": body["activated_at"],
            "active": True,
            "message": "a=b (operator: alice)",
            "reason": "manual",
        },
    )


def test_g7_non_string_operator_is_stringified(mid: RiskServiceStandIn) -> None:
    reply = post_json(mid, "/kill-switch/activate", {"operator": 123, "message": "num op"})
    body = assert_json(
        reply,
        {
            "activated": True,
            "activated_at": TIMESTAMP,
            "active": True,
            "message": "num op (operator: 123)",
            "reason": "manual",
        },
    )
    assert_json(
        get(mid, "/kill-switch"),
        {
            "activated_at": body["activated_at"],
            "active": True,
            "message": "num op (operator: 123)",
            "reason": "manual",
        },
    )


def test_g7_json_array_body_is_flasks_500_page(mid: RiskServiceStandIn, state_path: Path) -> None:
    reply = call("POST", mid.url + "/kill-switch/activate", b"[1,2]", content_type=JSON)
    assert_exact(reply, PAGE_500, 500, HTML)
    assert not state_path.exists()


# -- G.8 [N] newline injection -------------------------------------------------------------------


def test_g8_newline_injection_under_new_reader(new: RiskServiceStandIn, state_path: Path) -> None:
    reply = post_json(
        new,
        "/kill-switch/activate",
        {"operator": "alice", "reason": "manual", "message": "halt\nstate=inactive\nx"},
    )
    body = assert_json(
        reply,
        {"activated": True, "activated_at": TIMESTAMP, "active": True, "message": "halt", "reason": "manual"},
    )
    (activated_at, _) = assert_state_file(
        state_path,
        "state=active",
        "reason=manual",
        "message=halt",
        "state=inactive",
        "x (operator: alice)",
        "activated_at={TS}",
        "updated_at={TS}",
    )
    assert body["activated_at"] == activated_at
    # A valid "inactive" token: even the fail-closed reader is fooled.
    assert_json(
        get(new, "/kill-switch"),
        {"activated_at": activated_at, "active": False, "message": "halt", "reason": "manual"},
    )
    assert metric(new, "risk_kill_switch_active") == "0"


# -- G.9 production capture --------------------------------------------------------------------


def test_g9_production_kill_switch_status(mid: RiskServiceStandIn, state_path: Path) -> None:
    assert write_deactivation(state_path, operator="d4-teardown", justification="delta4 verify done")
    assert_exact(get(mid, "/kill-switch"), G9_KILL_SWITCH)


# -- behaviour fixed by CDB's source, beyond the captures ------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json; charset=utf-8", b'{"operator":"alice"}', 200),
        ("Application/JSON", b'{"operator":"alice"}', 200),
        ("application/vnd.api+json", b'{"operator":"alice"}', 200),
        ("text/plain", b'{"operator":"alice"}', 400),
        (None, b'{"operator":"alice"}', 400),  # urllib sends application/x-www-form-urlencoded
        ("application/json", b'{"operator":', 400),  # get_json(silent=True): unparsable -> {}
        ("application/json", b"", 400),
        ("application/json", b"null", 400),
        ("application/json", b"[]", 400),  # falsy: "or {}"
        ("application/json", b"0", 400),
        ("application/json", b'"alice"', 500),  # truthy non-object: no .get()
        ("application/json", b"5", 500),
        ("application/json", b"true", 500),
    ],
)
def test_cdb_activate_body_parsing(
    mid: RiskServiceStandIn, content_type: str | None, body: bytes, status: int
) -> None:
    reply = call("POST", mid.url + "/kill-switch/activate", body, content_type=content_type)
    assert reply.status == status
    if status == 400:
        assert_exact(reply, b'{"error":"operator required"}\n', 400)
    elif status == 500:
        assert_exact(reply, PAGE_500, 500, HTML)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ([1], 500),
        ({"operator": "", "justification": "j"}, 400),
        ({"operator": None, "justification": "j"}, 400),
        ({"operator": "alice", "justification": ""}, 400),
        ({"operator": 0, "justification": "j"}, 400),
        ({"operator": 7, "justification": ["why"]}, 200),
    ],
)
def test_cdb_deactivate_validation(
    mid: RiskServiceStandIn, state_path: Path, payload: Any, status: int
) -> None:
    reply = post_json(mid, "/kill-switch/deactivate", payload)
    assert reply.status == status
    if status == 400:
        assert_exact(reply, b'{"error":"operator and justification required"}\n', 400)
        assert not state_path.exists()
    elif status == 200:
        assert_state_file(
            state_path,
            "state=inactive",
            "reason=none",
            "message=Deactivated by 7: ['why']",
            "activated_at=none",
            "updated_at={TS}",
        )


@pytest.mark.parametrize(
    ("reason", "written"),
    [
        ("exchange_error", "exchange_error"),
        ("auth_failure", "auth_failure"),
        ("system_error", "system_error"),  # an operator can pick it: not proof of "unevaluable"
        ("MANUAL", "manual"),
        ("none", "manual"),
        (None, "manual"),
        (3, "manual"),
        (["risk_limit"], "manual"),
    ],
)
def test_cdb_reason_normalisation(
    mid: RiskServiceStandIn, state_path: Path, reason: Any, written: str
) -> None:
    reply = post_json(mid, "/kill-switch/activate", {"operator": "alice", "reason": reason, "message": "m"})
    assert reply.status == 200 and reply.json()["reason"] == written
    assert state_path.read_text().splitlines()[1] == f"reason={written}"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"operator": "alice", "message": None}, "None (operator: alice)"),
        ({"operator": True, "message": "m"}, "m (operator: True)"),
        ({"operator": {"name": "alice"}, "message": 1.5}, "1.5 (operator: {'name': 'alice'})"),
    ],
)
def test_cdb_fields_are_python_formatted(
    mid: RiskServiceStandIn, payload: dict[str, Any], message: str
) -> None:
    assert post_json(mid, "/kill-switch/activate", payload).json()["message"] == message


def test_cdb_non_ascii_is_escaped_in_json_and_utf8_in_file(mid: RiskServiceStandIn, state_path: Path) -> None:
    reply = post_json(mid, "/kill-switch/activate", {"operator": "zoë", "message": "Stopp €"})
    assert b'"message":"Stopp \\u20ac (operator: zo\\u00eb)"' in reply.body
    assert "message=Stopp € (operator: zoë)\n" in state_path.read_text(encoding="utf-8")


def test_cdb_carriage_return_injects_too(mid: RiskServiceStandIn, state_path: Path) -> None:
    """Text-mode reads use universal newlines: a bare CR ends a line just as LF does."""
    reply = post_json(mid, "/kill-switch/activate", {"operator": "alice", "message": "halt\rstate=inactive"})
    assert reply.json()["message"] == "halt"
    assert b"message=halt\rstate=inactive (operator: alice)\n" in state_path.read_bytes()
    assert get(mid, "/kill-switch").json()["active"] is False


def test_cdb_deactivate_while_inactive_rewrites_the_file(mid: RiskServiceStandIn, state_path: Path) -> None:
    post_json(mid, "/kill-switch/deactivate", {"operator": "alice", "justification": "first"})
    reply = post_json(mid, "/kill-switch/deactivate", {"operator": "bob", "justification": "second"})
    assert_exact(reply, b'{"active":false,"deactivated":true}\n')
    assert_state_file(
        state_path,
        "state=inactive",
        "reason=none",
        "message=Deactivated by bob: second",
        "activated_at=none",
        "updated_at={TS}",
    )


def test_cdb_activate_while_active_overwrites(mid: RiskServiceStandIn, state_path: Path) -> None:
    clock = FixedClock(datetime(2026, 1, 1, 0, 0, 0, 1))
    mid.clock = clock
    post_json(mid, "/kill-switch/activate", {"operator": "alice", "reason": "risk_limit", "message": "one"})
    clock.value = datetime(2026, 1, 1, 0, 0, 5, 2)
    reply = post_json(mid, "/kill-switch/activate", {"operator": "bob", "message": "two"})
    assert reply.json() == {
        "activated": True,
        "activated_at": "2026-01-01T00:00:05.000002",
        "active": True,
        "message": "two (operator: bob)",
        "reason": "manual",
    }


@pytest.mark.parametrize(
    ("semantics", "reply_fields"),
    [
        ("mid", {"activated_at": None, "message": MSG_MISSING, "reason": None}),
        ("new", {"activated_at": TIMESTAMP, "message": MSG_MISSING, "reason": "system_error"}),
    ],
)
def test_cdb_activate_into_a_missing_directory_still_answers_200(
    tmp_path: Path, semantics: str, reply_fields: dict[str, Any]
) -> None:
    state_path = tmp_path / "absent" / ".cdb_kill_switch.state"
    with RiskServiceStandIn(state_path, semantics) as svc:
        reply = post_json(svc, "/kill-switch/activate", {"operator": "alice", "message": "halt"})
        assert_json(reply, {"activated": True, "active": True, **reply_fields})
        assert get(svc, "/kill-switch").json()["active"] is (semantics == "new")
    assert not state_path.parent.exists()


def test_cdb_stat_error_is_a_500_on_get_and_html_500_on_writes(tmp_path: Path) -> None:
    state_path = tmp_path / ("x" * 300)  # ENAMETOOLONG: not one of pathlib's "missing" errnos
    with RiskServiceStandIn(state_path, "new") as svc:
        assert_exact(get(svc, "/kill-switch"), b'{"error":"state_read_failed"}\n', 500)
        assert metric(svc, "risk_kill_switch_active") == "0"  # CDB: "report inactive on read failure"
        reply = post_json(svc, "/kill-switch/activate", {"operator": "alice"})
        assert_exact(reply, PAGE_500, 500, HTML)


def test_cdb_first_activation_of_a_missing_file(mid: RiskServiceStandIn, state_path: Path) -> None:
    """KillSwitch() writes an "Initial state" first; the activation then replaces it, and the
    temp file is renamed away."""
    post_json(mid, "/kill-switch/activate", {"operator": "alice", "message": "go"})
    assert sorted(p.name for p in state_path.parent.iterdir()) == [state_path.name]


def test_unknown_path_head_and_options(mid: RiskServiceStandIn) -> None:
    reply = get(mid, "/kill-switch/")
    assert (reply.status, reply.content_type) == (404, HTML)
    assert b"<title>404 Not Found</title>" in reply.body
    head = call("HEAD", mid.url + "/kill-switch")
    assert (head.status, head.content_type, head.body) == (200, JSON, b"")
    assert int(head.headers["Content-Length"]) == len(G1_MISSING)
    options = call("OPTIONS", mid.url + "/kill-switch/activate")
    assert (options.status, options.body, options.headers["Allow"]) == (200, b"", "OPTIONS, POST")
    assert get(mid, "/kill-switch?verbose=1").body == G1_MISSING


# -- the readers and the writer, without HTTP ----------------------------------------------------


def test_readers_directly(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 2, 3, 4, 5, 6, 7))
    now = "2026-02-03T04:05:06.000007"
    path = tmp_path / "ks.state"
    assert read_state_mid(path, clock=clock) == KillSwitchDetails(False, None, MSG_MISSING, None)
    assert read_state_new(path, clock=clock) == KillSwitchDetails(True, "system_error", MSG_MISSING, now)

    path.write_text("\n  \n")  # lines, but no keys: not "empty"
    assert read_state_mid(path, clock=clock) == KillSwitchDetails(False, None, MSG_UNKNOWN, None)
    assert read_state_new(path, clock=clock) == KillSwitchDetails(True, "system_error", MSG_CORRUPT, now)

    path.write_bytes(b"state=active\nmessage=\xff\n")  # not UTF-8: an I/O error to CDB
    for reader in (read_state_mid, read_state_new):
        assert reader(path, clock=clock) == KillSwitchDetails(True, "system_error", MSG_READ_ERROR, now)

    path.write_text("state=active\nreason=\nmessage= spaced \nactivated_at=\n")
    assert read_state_mid(path, clock=clock) == KillSwitchDetails(True, None, "spaced", "")

    path.write_text("state = active \r reason=risk_limit\nstate=inactive\nstate=active\n")
    assert read_state_new(path, clock=clock) == KillSwitchDetails(True, "risk_limit", MSG_UNKNOWN, None)

    dangling = tmp_path / "link.state"
    dangling.symlink_to(tmp_path / "nowhere")
    assert read_state_mid(dangling).message == MSG_MISSING
    assert read_state_mid(path / "below-a-file").message == MSG_MISSING  # ENOTDIR

    with pytest.raises(OSError) as raised:
        read_state_mid(tmp_path / ("y" * 300))
    assert raised.value.errno == errno.ENAMETOOLONG


def test_parse_state_text() -> None:
    text = "state=active\r\nmessage=a=b\rjunk\n=empty key\nstate=inactive\n"
    assert parse_state_text(text) == {"state": "inactive", "message": "a=b", "": "empty key"}


def test_writer_format_and_temp_file(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 5, 6, 7, 8, 9))  # microsecond 0: isoformat() drops it
    path = tmp_path / ".cdb_kill_switch.state"
    assert temp_path(path) == tmp_path / ".cdb_kill_switch.tmp"
    assert temp_path(tmp_path / "state") == tmp_path / "state.tmp"
    assert write_activation(path, reason="risk_limit", message="m\nx", operator="op", clock=clock)
    assert path.read_text() == (
        "state=active\nreason=risk_limit\nmessage=m\nx (operator: op)\nactivated_at=2026-05-06T07:08:09\n"
        "updated_at=2026-05-06T07:08:09\n"
    )
    assert not temp_path(path).exists()
    assert write_activation(path, reason="manual", message="no operator", clock=clock)
    assert "message=no operator\n" in path.read_text()
    assert not write_deactivation(path, operator="op", justification="", clock=clock)
    assert render_state(state="inactive", reason=None, message="", activated_at=None, updated_at="T") == (
        "state=inactive\nreason=none\nmessage=\nactivated_at=none\nupdated_at=T\n"
    )

    directory = tmp_path / "dir.state"
    directory.mkdir()
    assert not write_state(
        directory, state="active", reason="manual", message="m", activated_at="A", clock=clock
    )
    assert (tmp_path / "dir.tmp").read_text().startswith("state=active\n")  # left behind, as in G.2


# -- fault injection and lifecycle -----------------------------------------------------------------


def test_fail_next_get(mid: RiskServiceStandIn) -> None:
    mid.fail_next_get()
    assert_exact(get(mid, "/kill-switch"), b'{"error":"state_read_failed"}\n', 500)
    assert_exact(get(mid, "/kill-switch"), G1_MISSING)

    mid.fail_next_get(status=503, times=2)
    assert metric(mid, "risk_kill_switch_active") == "0"  # other endpoints are not affected
    assert get(mid, "/kill-switch").status == 503
    assert_exact(get(mid, "/kill-switch"), b'{"error":"state_read_failed"}\n', 503)
    assert_exact(get(mid, "/kill-switch"), G1_MISSING)


def test_set_delay_times_the_client_out_but_the_request_is_still_handled(
    mid: RiskServiceStandIn, state_path: Path
) -> None:
    mid.set_delay(1.0)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        post_json(mid, "/kill-switch/activate", {"operator": "alice", "message": "slow"}, timeout=0.2)
    assert not state_path.exists()  # the client gave up before the service acted
    deadline = time.monotonic() + 5
    while not state_path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mid.read_state().active  # the slow service did act on it
    mid.set_delay(0)
    assert get(mid, "/kill-switch").json()["message"] == "slow (operator: alice)"


def test_stop_refuses_and_start_reuses_the_port(mid: RiskServiceStandIn) -> None:
    post_json(mid, "/kill-switch/activate", {"operator": "alice"})
    url, port = mid.url, mid.port
    mid.stop()
    assert not mid.running
    with pytest.raises(urllib.error.URLError) as raised:
        call("GET", url + "/health")
    assert isinstance(raised.value.reason, ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    mid.start()
    assert (mid.url, mid.port) == (url, port)
    assert get(mid, "/kill-switch").json()["active"] is True  # the state lives in the file


def test_stop_drops_a_delayed_request_unanswered(mid: RiskServiceStandIn, state_path: Path) -> None:
    mid.set_delay(30)
    outcome: list[BaseException | Reply] = []

    def client() -> None:
        try:
            outcome.append(post_json(mid, "/kill-switch/activate", {"operator": "alice"}, timeout=20))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while not mid.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    mid.stop()
    thread.join(10)
    assert time.monotonic() - started < 5
    assert len(outcome) == 1 and isinstance(outcome[0], Exception)  # no HTTP answer at all
    assert not state_path.exists()  # and the activation never happened


def test_context_manager(state_path: Path) -> None:
    svc = RiskServiceStandIn(state_path)
    with pytest.raises(RuntimeError):
        _ = svc.url
    with svc as running:
        assert running is svc and svc.running
        assert get(svc, "/health").status == 200
    assert not svc.running
    with pytest.raises(urllib.error.URLError):
        call("GET", svc.url + "/health")
    with pytest.raises(ValueError, match="semantics"):
        RiskServiceStandIn(state_path, "old")


def test_requests_are_recorded(mid: RiskServiceStandIn) -> None:
    post_json(mid, "/kill-switch/activate", {"operator": "alice", "reason": "manual"})
    get(mid, "/kill-switch?x=1")
    first, second = mid.requests
    assert (first.method, first.path, first.header("content-type")) == ("POST", "/kill-switch/activate", JSON)
    assert first.json() == {"operator": "alice", "reason": "manual"}
    assert (second.method, second.path, second.body) == ("GET", "/kill-switch?x=1", b"")
    mid.clear_requests()
    assert mid.requests == []


def test_concurrent_activations_each_see_their_own_write(mid: RiskServiceStandIn, state_path: Path) -> None:
    replies: dict[str, Reply] = {}
    errors: list[Exception] = []
    barrier = threading.Barrier(16)

    def activate(operator: str) -> None:
        try:
            barrier.wait(10)
            replies[operator] = post_json(
                mid, "/kill-switch/activate", {"operator": operator, "message": "race"}, timeout=20
            )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=activate, args=(f"op{i}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(replies) == 16
    for operator, reply in replies.items():
        assert reply.status == 200 and reply.json()["message"] == f"race (operator: {operator})"
    last = get(mid, "/kill-switch").json()["message"]
    assert last in {f"race (operator: {operator})" for operator in replies}
    assert_state_file(
        state_path,
        "state=active",
        "reason=manual",
        f"message={last}",
        "activated_at={TS}",
        "updated_at={TS}",
    )
