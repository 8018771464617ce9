"""The HTTP backend against a local stand-in of CDB's risk service (tests/standins), quirks included."""

from __future__ import annotations

import re

import pytest

from killswitch import services
from killswitch.backends import BackendError, Condition, HttpBackend, InvalidInput
from killswitch.models import Action, AuditRecord
from tests.incidents.factories import make_user
from tests.standins.risk_service import RiskServiceStandIn, write_activation, write_deactivation

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?"


@pytest.fixture(params=["mid", "new"])
def risk(request, tmp_path):
    """CDB's risk service in both reader generations, on a state file that starts out trading."""
    state = tmp_path / "kill_switch" / ".cdb_kill_switch.state"
    state.parent.mkdir()
    write_deactivation(state, operator="setup", justification="initial state for the test")
    with RiskServiceStandIn(state, semantics=request.param) as service:
        yield service


@pytest.fixture
def backend(risk):
    return HttpBackend(risk.url, timeout=1.0)


def test_reads_trading_and_halted(risk, backend):
    assert backend.read().condition == Condition.TRADING
    write_activation(risk.state_file, reason="risk_limit", message="Exposure", operator="risk_manager")
    state = backend.read()
    assert (
        state.halted and state.reason == "risk_limit" and state.message == "Exposure (operator: risk_manager)"
    )


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage", "unknown token"])
def test_cdbs_fail_open_and_fail_closed_guesses_are_both_unevaluable(risk, backend, damage):
    if damage == "missing":
        risk.state_file.unlink()
    else:
        risk.state_file.write_text(
            {"empty": "", "garbage": "nothing useful", "unknown token": "state=halted\n"}[damage]
        )
    state = backend.read()
    assert state.condition == Condition.UNEVALUABLE, state
    assert not state.trading


def test_activation_is_sent_as_json_and_confirmed_by_a_get(risk, backend):
    state = backend.activate(operator="alice", reason="exchange_error", message="Binance 5xx")
    assert state.halted
    post = next(r for r in risk.requests if r.method == "POST")
    assert post.path == "/kill-switch/activate" and post.header("Content-Type") == "application/json"
    assert post.json() == {"operator": "alice", "reason": "exchange_error", "message": "Binance 5xx"}
    assert [r.method for r in risk.requests][-1] == "GET"  # only the read-back counts
    assert re.fullmatch(
        rf"state=active\nreason=exchange_error\nmessage=Binance 5xx \(operator: alice\)\n"
        rf"activated_at={TS}\nupdated_at={TS}\n",
        risk.state_file.read_text(),
    )


def test_deactivation_writes_what_cdb_writes(risk, backend):
    backend.activate(operator="alice", reason="manual", message="x")
    state = backend.deactivate(operator="bob", justification="Fixed and verified for 15 minutes")
    assert state.trading
    assert "message=Deactivated by bob: Fixed and verified for 15 minutes\nactivated_at=none\n" in (
        risk.state_file.read_text()
    )


def test_a_silent_write_failure_is_caught_by_the_read_back(risk, backend):
    """CDB answers 200 "active: true" even when it could not write; the follow-up GET tells the truth."""
    risk.state_file.unlink()
    risk.state_file.mkdir()  # unreadable and unwritable
    state = backend.activate(operator="alice", reason="manual", message="x")
    assert not state.halted and state.condition == Condition.UNEVALUABLE


def test_control_characters_never_reach_cdb(risk, backend):
    with pytest.raises(InvalidInput):
        backend.activate(operator="alice", reason="manual", message="halt\nstate=inactive")
    assert not [r for r in risk.requests if r.method == "POST"]
    assert "state=inactive" in risk.state_file.read_text()


def test_unreachable_slow_and_failing_services(risk, backend):
    risk.fail_next_get()
    assert backend.read().condition == Condition.UNEVALUABLE
    risk.set_delay(2.0)
    late = backend.read()  # connected, but no answer in time: the state is not known either way
    assert late.condition == Condition.UNEVALUABLE and "no answer within 1 s" in late.detail
    risk.set_delay(0)
    risk.stop()
    assert backend.read().condition == Condition.UNREACHABLE
    with pytest.raises(BackendError, match="unreachable"):
        backend.activate(operator="alice", reason="manual", message="x")
    risk.start()
    assert backend.read().condition == Condition.TRADING


@pytest.mark.django_db
def test_halt_and_four_eyes_resume_through_the_risk_service(risk, settings, responder, lead):
    settings.KILLSWITCH_TARGETS = f"production={risk.url}"
    services.killswitch_reconcile(target="production")  # the console's first look: recorded as seen
    outcome = services.killswitch_activate(
        target="production", actor=responder, reason="manual", message="drill"
    )
    assert outcome.state.halted and "state=active" in risk.state_file.read_text()
    request = services.killswitch_request_resume(
        target="production", actor=lead, justification="Exchange stable for 20 minutes, fix deployed"
    )
    approver = make_user(role="lead")
    services.killswitch_approve_resume(request_id=request.pk, actor=approver, reauthenticated=True)
    assert f"message=Deactivated by {approver.username}: Exchange stable" in risk.state_file.read_text()
    assert [r.action for r in AuditRecord.objects.filter(target="production").order_by("seq")] == [
        Action.EXTERNAL_CHANGE,
        Action.ACTIVATED,
        Action.RESUME_REQUESTED,
        Action.RESUME_APPROVED,
    ]


@pytest.mark.django_db
def test_an_unreachable_service_records_nothing(risk, settings, responder):
    settings.KILLSWITCH_TARGETS = f"production={risk.url}"
    risk.stop()
    with pytest.raises(BackendError):
        services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    assert not AuditRecord.objects.filter(action=Action.ACTIVATED).exists()
    assert services.killswitch_reconcile(target="production").condition == Condition.UNREACHABLE
    assert not AuditRecord.objects.filter(action=Action.EXTERNAL_CHANGE).exists()
