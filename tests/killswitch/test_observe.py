"""How the console observes the kill switch: whatever the file holds or the risk service answers,
reconcile records it (escaped, cut to size, judged fail-closed) and never fails nor hangs; the banner
and the CLI show the live state and the real reason it cannot be evaluated."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from console.selectors import liveness
from incidents.models import Incident, Severity
from killswitch import services, tasks
from killswitch.backends import (
    LIMITS,
    MAX_STATE_BYTES,
    REASONS,
    UNEVALUABLE_MESSAGES,
    UNSAFE,
    Condition,
    FileBackend,
    State,
    bounded,
    parse_state_file,
)
from killswitch.models import Action, AuditRecord, TargetState
from tests.killswitch.test_reconcile import assert_chain_intact, cdb_deactivate, cdb_write
from tests.standins.risk_service import RiskServiceStandIn

FIELDS = ("reason", "message", "activated_at", "detail")
HYPOTHESIS = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def storable(text: str) -> bool:
    return not UNSAFE.search(text)


def assert_recorded(state: State, before: int, baseline_fingerprint: str) -> None:
    """What reconcile must always leave behind: the row as read, cleaned; one audit record for a
    change; a SEV-1 incident for a halt or an unevaluable state. Never trading by guess."""
    assert state.condition in (Condition.HALTED, Condition.TRADING, Condition.UNEVALUABLE), state
    row = TargetState.objects.get(target="production")
    assert row.condition == state.condition and row.fingerprint == state.fingerprint()
    for name in FIELDS:
        value = getattr(row, name)
        assert storable(value) and len(value) <= LIMITS[name], (name, value)
    new = list(AuditRecord.objects.filter(seq__gt=before))
    if state.fingerprint() == baseline_fingerprint:
        assert new == []
        return
    [record] = new
    assert record.action == Action.EXTERNAL_CHANGE
    assert record.state_after == json.loads(json.dumps(state.as_dict()))
    if state.condition != Condition.TRADING:
        assert record.incident_id is not None
        incident = Incident.objects.get(pk=record.incident_id)
        assert incident.severity == Severity.SEV1 and incident.is_open and not incident.is_drill


def back_to_trading(path: Path) -> tuple[int, str]:
    cdb_deactivate(path, operator="setup", justification="back to trading")
    state = services.killswitch_reconcile(target="production")
    assert state.trading
    return AuditRecord.objects.count() and AuditRecord.objects.latest("seq").seq, state.fingerprint()


# --- 1. Any file ------------------------------------------------------------------------------

VALUES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"active", b"inactive", b"none", b"manual", b"\x00", b"\xff\xfe", "\u2028".encode()]),
)
LINES = st.lists(
    st.tuples(
        st.sampled_from([b"state", b"reason", b"message", b"activated_at", b"updated_at", b" state ", b""]),
        VALUES,
    ).map(lambda kv: kv[0] + b"=" + kv[1]),
    max_size=8,
)
FILES = st.one_of(
    st.binary(max_size=2000),
    LINES.map(lambda lines: b"\n".join(lines)),
    # A state CDB would act on, with anything in the other fields.
    st.tuples(st.sampled_from([b"active", b"inactive"]), LINES).map(
        lambda s: b"\n".join([b"state=" + s[0], *(line for line in s[1] if not line.startswith(b"state"))])
    ),
)


@pytest.mark.django_db
@HYPOTHESIS
@given(content=FILES)
def test_reconcile_records_any_file_and_never_fails(ks_files: Any, content: bytes) -> None:
    before, baseline = back_to_trading(ks_files.production)
    ks_files.production.write_bytes(content)
    state = services.killswitch_reconcile(target="production")
    assert_recorded(state, before, baseline)


NAMED_FILES = {
    "NUL in the message": (
        b"state=active\nreason=manual\nmessage=halt\x00now (operator: x)\nactivated_at=none\nupdated_at=x\n",
        Condition.HALTED,
        "halt\\x00now",
    ),
    "NUL in the state": (b"state=active\x00\nreason=manual\n", Condition.UNEVALUABLE, "active\\x00"),
    "over-long reason": (
        b"state=active\nreason=" + b"r" * 5000 + b"\nmessage=m\n",
        Condition.HALTED,
        "r" * 39 + "…",
    ),
    "over-long activated_at": (
        b"state=active\nreason=manual\nactivated_at=2026-" + b"9" * 5000 + b"\n",
        Condition.HALTED,
        "2026-999",
    ),
    "invalid UTF-8": (
        b"state=active\nmessage=\xff\xfe\xfa\n",
        Condition.UNEVALUABLE,
        "invalid UTF-8 at byte 21",
    ),
    "huge file": (
        b"state=active\nreason=manual\nmessage=" + b"x" * (8 * MAX_STATE_BYTES) + b"\n",
        Condition.UNEVALUABLE,
        f"more than {MAX_STATE_BYTES}",
    ),
    "binary junk": (bytes(range(128)) * 8, Condition.UNEVALUABLE, "missing state key"),
    "a line separator splits no line for CDB": (
        "state=active\nreason=manual\nmessage=a\u2028state=inactive\n".encode(),
        Condition.HALTED,
        "a\\u2028state=inactive",
    ),
    "spaces around the key and value, as CDB strips them": (
        b" state = active \nreason = manual\n",
        Condition.HALTED,
        "manual",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("content", "condition", "shown"), NAMED_FILES.values(), ids=NAMED_FILES.keys())
def test_reconcile_records_damaged_files_escaped_and_cut(
    ks_files: Any, content: bytes, condition: str, shown: str
) -> None:
    before, baseline = back_to_trading(ks_files.production)
    ks_files.production.write_bytes(content)
    state = services.killswitch_reconcile(target="production")
    assert state.condition == condition
    assert_recorded(state, before, baseline)
    row = TargetState.objects.get(target="production")
    assert any(shown in getattr(row, name) for name in FIELDS), [getattr(row, n) for n in FIELDS]
    assert_chain_intact()


# --- 1. Any answer of the risk service ----------------------------------------------------------


@pytest.fixture
def risk(ks_files: Any, settings: Any) -> Any:
    """The production target behind the risk service stand-in (newer CDB), trading."""
    with RiskServiceStandIn(ks_files.production, semantics="new") as service:
        settings.KILLSWITCH_TARGETS = f"production={service.url};drill=file:{ks_files.drill}"
        settings.KILLSWITCH_HTTP_TIMEOUT = 5.0
        yield service


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=200),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
ANSWERS = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"active": st.booleans() | JSON},
        optional={
            "reason": st.sampled_from(REASONS) | JSON,
            "message": st.sampled_from(UNEVALUABLE_MESSAGES) | JSON,
            "activated_at": st.text(max_size=100) | JSON,
        },
    ),
)


def encode(value: Any, ascii_only: bool) -> bytes:
    # Lone surrogates cannot be UTF-8: sent as the bytes a careless service would send.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@pytest.mark.django_db
@HYPOTHESIS
@given(
    answer=ANSWERS,
    ascii_only=st.booleans(),
    status=st.sampled_from([200, 200, 200, 500, 404]),
    junk=st.none() | st.binary(max_size=200),
)
def test_reconcile_records_any_answer_of_the_risk_service_and_never_fails(
    risk: Any, answer: Any, ascii_only: bool, status: int, junk: bytes | None
) -> None:
    risk.answer_get(None)
    before, baseline = back_to_trading(risk.state_file)
    risk.answer_get(junk if junk is not None else encode(answer, ascii_only), status)
    state = services.killswitch_reconcile(target="production")
    assert_recorded(state, before, baseline)


NAMED_ANSWERS = {
    "active as a string": ({"active": "true", "reason": "manual"}, Condition.UNEVALUABLE, "active is str"),
    "nested reason": (
        {"active": True, "reason": {"a": [1, {"b": None}]}, "message": "x"},
        Condition.UNEVALUABLE,
        "reason is dict",
    ),
    "NUL and a lone surrogate in the message": (
        {"active": True, "reason": "manual", "message": "a\u0000b\ud800c"},
        Condition.HALTED,
        "a\\x00b\\ud800c",
    ),
    "a huge message": (
        {"active": True, "reason": "manual", "message": "m" * (2 * MAX_STATE_BYTES)},
        Condition.UNEVALUABLE,
        "answer longer than",
    ),
    "a long message under the size limit": (
        {"active": True, "reason": "manual", "message": "m" * 10_000},
        Condition.HALTED,
        "m" * 1999 + "…",
    ),
    "a list": ([1, 2, 3], Condition.UNEVALUABLE, "HTTP 200"),
    "an error object with no state": (
        {"error": {"deep": ["x" * 1000]}},
        Condition.UNEVALUABLE,
        "active is NoneType",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("answer", "condition", "shown"), NAMED_ANSWERS.values(), ids=NAMED_ANSWERS.keys())
def test_reconcile_records_foreign_answers_escaped_and_cut(
    risk: Any, answer: Any, condition: str, shown: str
) -> None:
    before, baseline = back_to_trading(risk.state_file)
    risk.answer_get(encode(answer, ascii_only=True))
    state = services.killswitch_reconcile(target="production")
    assert state.condition == condition
    assert_recorded(state, before, baseline)
    row = TargetState.objects.get(target="production")
    assert any(shown in getattr(row, name) for name in FIELDS), [getattr(row, n) for n in FIELDS]
    assert_chain_intact()


def test_a_change_past_the_stored_length_is_still_a_change(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("state=active\nreason=manual\nmessage=" + "m" * 3000 + "1\n")
    first = FileBackend(path).read()
    path.write_text("state=active\nreason=manual\nmessage=" + "m" * 3000 + "2\n")
    second = FileBackend(path).read()
    assert first.message == second.message and first.fingerprint() != second.fingerprint()


# --- 2. A failing reconcile is visible ------------------------------------------------------------


@pytest.mark.django_db
def test_a_database_error_inside_reconcile_marks_its_heartbeat_failing(ks_files: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END; "
            "$$ LANGUAGE plpgsql; CREATE TRIGGER refuse_audit BEFORE INSERT ON killswitch_auditrecord "
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
        )
    # CDB halts both targets: recording that is an audit insert, which the database refuses.
    for path in (ks_files.production, ks_files.drill):
        FileBackend(path).activate(operator="cdb", reason="circuit_breaker", message="daily loss")
    assert tasks.reconcile_targets() == {"production": "error", "drill": "error"}
    failing = {job.name: job.error for job in liveness().failing}
    assert "disk full" in failing["kill switch production"]


@pytest.mark.django_db
def test_a_broken_target_configuration_marks_the_reconcile_failing(settings: Any) -> None:
    settings.KILLSWITCH_TARGETS = "production=ftp://nowhere"
    with pytest.raises(ValueError, match="needs file:PATH"):
        tasks.reconcile_targets()
    failing = {job.name: job.error for job in liveness().failing}
    assert "needs file:PATH" in failing["kill switch"]


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_during_reconcile_still_writes_the_failing_heartbeat(ks_files: Any) -> None:
    """The audit insert kills its own database session: the heartbeat needs a new connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION drop_session() RETURNS trigger AS $$ BEGIN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END; $$ LANGUAGE plpgsql; "
            "CREATE TRIGGER drop_session BEFORE INSERT ON killswitch_auditrecord "
            "FOR EACH ROW EXECUTE FUNCTION drop_session();"
        )
    FileBackend(ks_files.production).activate(operator="cdb", reason="circuit_breaker", message="loss")
    try:
        result = tasks.reconcile_targets()
        assert result["production"] == "error"
        failing = {job.name: job.error for job in liveness().failing}
        assert "kill switch production" in failing
    finally:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER drop_session ON killswitch_auditrecord; DROP FUNCTION drop_session();"
            )


# --- 6. Reads never hang ----------------------------------------------------------------------------


def _release(fifo: Path) -> None:
    """Open the FIFO's writing end once, so that a reader blocked on it returns."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.django_db
def test_a_fifo_in_place_of_the_state_file_is_unevaluable_without_waiting_for_a_writer(ks_files: Any) -> None:
    services.killswitch_reconcile(target="production")
    ks_files.production.unlink()
    os.mkfifo(ks_files.production)
    result: list[State] = []
    reader = threading.Thread(
        target=lambda: result.append(FileBackend(ks_files.production).read()), daemon=True
    )
    reader.start()
    reader.join(30)  # a guard against hanging the suite, not a timing
    try:
        assert not reader.is_alive(), "reading a FIFO blocked"
    finally:
        _release(ks_files.production)
    assert result[0].condition == Condition.UNEVALUABLE
    assert result[0].detail == "State file read error: not a regular file (a FIFO)"
    assert services.killswitch_reconcile(target="production").condition == Condition.UNEVALUABLE
    assert Incident.objects.get().severity == Severity.SEV1


def test_a_read_that_blocks_is_unevaluable_after_its_timeout_and_never_piles_up(tmp_path: Path) -> None:
    """A FIFO opened for reading without O_NONBLOCK blocks in open(), as a stale network mount does."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    calls: list[int] = []

    def blocking_read() -> bytes:
        calls.append(1)
        with open(fifo, "rb") as handle:
            return handle.read()

    try:
        first = bounded(f"test:{fifo}", blocking_read, 0.2)
        assert isinstance(first, State) and first.condition == Condition.UNEVALUABLE
        assert first.detail == "State read timed out after 0.2 s"
        second = bounded(f"test:{fifo}", blocking_read, 0.2)
        assert second == first and len(calls) == 1  # the blocked read is not started again
    finally:
        _release(fifo)
    stuck = [t for t in threading.enumerate() if t.name.startswith("killswitch-read test:")]
    for thread in stuck:
        thread.join(30)
    assert bounded(f"test:{fifo}", lambda: b"read again", 5) == b"read again"


@pytest.mark.django_db(transaction=True)
def test_reconcile_holds_no_lock_during_a_slow_read_and_drops_a_read_overtaken_by_the_console(
    ks_files: Any, settings: Any, responder: Any
) -> None:
    with RiskServiceStandIn(ks_files.production, semantics="new") as risk:
        settings.KILLSWITCH_TARGETS = f"production={risk.url};drill=file:{ks_files.drill}"
        settings.KILLSWITCH_HTTP_TIMEOUT = 30.0
        services.killswitch_reconcile(target="production")
        before = AuditRecord.objects.count()
        risk.hold_answers()  # the next GET is read at once and answered when released
        slow: list[State] = []

        def reconcile_slowly() -> None:
            try:
                slow.append(services.killswitch_reconcile(target="production"))
            finally:
                connection.close()

        reading = threading.Thread(target=reconcile_slowly, daemon=True)
        reading.start()
        try:
            assert risk.wait_held(30), "the reconcile's read did not arrive"
            with transaction.atomic():  # the target's row is free while reconcile waits for CDB
                TargetState.objects.select_for_update(nowait=True).get(target="production")
            risk.release_answers(hold_more=False)
            # The console halts meanwhile: the read in flight (trading) is older than that.
            services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
        finally:
            risk.release_answers(hold_more=False)
            reading.join(30)
    assert slow and slow[0].trading
    assert TargetState.objects.get(target="production").condition == Condition.HALTED
    changes = AuditRecord.objects.filter(seq__gt=before).values_list("action", flat=True)
    assert list(changes) == [Action.ACTIVATED]  # the stale "trading" is no external resume
    assert not Incident.objects.exists()


# --- 7. The banner and the CLI show the live state and the real reason -----------------------------

TWO_STATE_LINES = (
    "state=active\nreason=manual\nmessage=halt\nstate=inactive (operator: alice)\n"
    "activated_at=2026-11-26T21:11:06.976216\nupdated_at=2026-11-26T21:11:06.976220\n"
)


@pytest.mark.django_db
def test_the_banner_reads_the_live_state_and_says_it_is_not_recorded_yet(
    client: Any, ks_files: Any, viewer: Any
) -> None:
    services.killswitch_reconcile(target="production")
    cdb_write(ks_files.production, TWO_STATE_LINES)
    client.force_login(viewer)
    body = client.get(reverse("killswitch:banner")).content.decode()
    assert "KILL SWITCH UNEVALUABLE" in body and "more than one state line" in body
    assert "not recorded yet: the console last recorded trading" in body
    services.killswitch_reconcile(target="production")
    body = client.get(reverse("killswitch:banner")).content.decode()
    assert "KILL SWITCH UNEVALUABLE" in body and 'data-testid="unrecorded-production"' not in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (TWO_STATE_LINES, "Corrupt state file: more than one state line"),
        (
            "state=halted\nreason=manual\nmessage=last good message\n",
            "Unknown kill-switch state value: halted",
        ),
    ],
    ids=["two state lines", "unknown value"],
)
def test_the_incident_and_status_name_the_real_reason_of_an_unevaluable_file(
    ks_files: Any, capsys: Any, content: str, reason: str
) -> None:
    services.killswitch_reconcile(target="production")
    cdb_write(ks_files.production, content)
    services.killswitch_reconcile(target="production")
    incident = Incident.objects.get()
    assert reason in incident.title
    latest = incident.events.order_by("-id").first()
    assert latest is not None and reason in latest.message
    call_command("killswitch", "status")
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("production"))
    assert "unevaluable" in line and reason in line
    assert "halt" not in line.split("unevaluable", 1)[1].replace(reason, "")


def test_the_summary_of_a_readable_state_is_its_reason_and_message() -> None:
    halted = parse_state_file("state=active\nreason=risk_limit\nmessage=Exposure (operator: x)\n")
    assert halted.summary == "risk_limit Exposure (operator: x)"


@pytest.mark.django_db
def test_a_reconcile_that_stops_running_is_shown_overdue_while_other_jobs_run(
    ks_files: Any, settings: Any
) -> None:
    """A run that dies without a word (a killed worker, a hard time limit) writes nothing: its
    heartbeat ages while the others stay fresh, and liveness names it within about one interval."""
    from datetime import timedelta

    from django.utils import timezone

    from console.services import heartbeat

    settings.KILLSWITCH_RECONCILE_SECONDS = 10.0
    start = timezone.now()
    heartbeat("kill switch production", at=start)
    heartbeat("health", at=start + timedelta(seconds=25))
    assert not liveness(now=start + timedelta(seconds=15)).failing
    late = liveness(now=start + timedelta(seconds=25))
    assert late.state == "failing"
    assert {job.name: job.error for job in late.failing} == {
        "kill switch production": "overdue: no run for 25 s"
    }
