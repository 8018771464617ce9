from __future__ import annotations

import os
import re
import stat

import pytest

from killswitch.backends import (
    BackendError,
    Condition,
    FileBackend,
    InvalidInput,
    judge_api_state,
    parse_state_file,
)

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"


@pytest.fixture
def backend(tmp_path):
    return FileBackend(tmp_path / ".cdb_kill_switch.state")


def test_activation_writes_exactly_what_cdb_writes(backend):
    state = backend.activate(operator="alice", reason="manual", message="Dashboard drill")
    assert re.fullmatch(
        rf"state=active\nreason=manual\nmessage=Dashboard drill \(operator: alice\)\n"
        rf"activated_at={TS}\nupdated_at={TS}\n",
        backend.path.read_text(),
    )
    assert state.halted and state.reason == "manual" and state.message == "Dashboard drill (operator: alice)"


def test_deactivation_writes_exactly_what_cdb_writes(backend):
    backend.activate(operator="alice", reason="risk_limit", message="x")
    state = backend.deactivate(operator="bob", justification="Root cause fixed; verified health")
    assert re.fullmatch(
        rf"state=inactive\nreason=none\nmessage=Deactivated by bob: Root cause fixed; verified health\n"
        rf"activated_at=none\nupdated_at={TS}\n",
        backend.path.read_text(),
    )
    assert state.trading and state.reason is None and state.activated_at is None


def test_writes_are_atomic_and_leave_no_temp_files(backend):
    backend.activate(operator="alice", reason="manual", message="")
    assert [p.name for p in backend.path.parent.iterdir()] == [backend.path.name]
    assert stat.S_IMODE(os.stat(backend.path).st_mode) == 0o644


@pytest.mark.parametrize(
    "message",
    [
        "halt\nstate=inactive",
        "halt\rstate=inactive",
        "tab\there",
        "nul\x00",
        "esc\x1b[31m",
        "ls\u2028sep",
        "del\x7f",
    ],
)
def test_control_characters_are_refused_in_every_field(backend, message):
    with pytest.raises(InvalidInput):
        backend.activate(operator="alice", reason="manual", message=message)
    with pytest.raises(InvalidInput):
        backend.activate(operator=message, reason="manual", message="ok")
    with pytest.raises(InvalidInput):
        backend.deactivate(operator="alice", justification=message)
    assert not backend.path.exists()


def test_unknown_reason_and_oversized_fields_are_refused(backend):
    with pytest.raises(InvalidInput, match="Unknown reason"):
        backend.activate(operator="alice", reason="pager", message="x")
    with pytest.raises(InvalidInput, match="too long"):
        backend.activate(operator="alice", reason="manual", message="x" * 501)
    with pytest.raises(InvalidInput, match="required"):
        backend.deactivate(operator="alice", justification="  ")


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (None, "State file missing"),
        ("", "Empty state file"),
        ("   \n\n", "Empty state file"),
        ("garbage without equals", "Corrupt state file: missing state key"),
        ("reason=manual\nmessage=x\n", "Corrupt state file: missing state key"),
        ("state=ACTIVE\nreason=manual\n", "Unknown kill-switch state value: ACTIVE"),
        ("state=halted\n", "Unknown kill-switch state value: halted"),
        (
            "state=active\nreason=manual\nmessage=halt\nstate=inactive (operator: alice)\n",
            "more than one state line",
        ),
    ],
)
def test_files_cdb_readers_would_guess_about_are_unevaluable(backend, content, detail):
    if content is not None:
        backend.path.write_text(content)
    state = backend.read()
    assert state.condition == Condition.UNEVALUABLE
    assert detail in state.detail
    assert not state.trading


def test_an_unreadable_path_is_unevaluable(backend):
    backend.path.mkdir()
    assert backend.read().condition == Condition.UNEVALUABLE
    with pytest.raises(BackendError):
        backend.activate(operator="alice", reason="manual", message="x")


def test_an_unwritable_directory_is_a_clear_error(tmp_path):
    backend = FileBackend(tmp_path / "missing-dir" / ".cdb_kill_switch.state")
    with pytest.raises(BackendError, match="Cannot write"):
        backend.activate(operator="alice", reason="manual", message="x")


def test_reader_follows_cdb_parsing_rules():
    state = parse_state_file("\r\n  state=active \r\nnoise\nreason=manual\nmessage=a=b (operator: x)\r\n")
    assert state.halted and state.message == "a=b (operator: x)"


@pytest.mark.parametrize(
    ("body", "condition"),
    [
        (
            {"active": False, "message": "State file missing", "reason": None, "activated_at": None},
            "unevaluable",
        ),
        (
            {"active": True, "message": "State file missing", "reason": "system_error", "activated_at": "x"},
            "unevaluable",
        ),
        ({"active": False, "message": "Unknown", "reason": None, "activated_at": None}, "unevaluable"),
        (
            {"active": True, "message": "Corrupt state file: missing state key", "reason": "system_error"},
            "unevaluable",
        ),
        (
            {"active": True, "message": "Unknown kill-switch state value: ACTIVE", "reason": "system_error"},
            "unevaluable",
        ),
        ({"active": True, "message": "Drill (operator: alice)", "reason": "manual"}, "halted"),
        ({"active": True, "message": "Disk full (operator: ops)", "reason": "system_error"}, "halted"),
        ({"active": False, "message": "Deactivated by alice: fixed", "reason": None}, "trading"),
    ],
)
def test_api_answers_are_judged_like_the_file(body, condition):
    assert judge_api_state(body).condition == condition
