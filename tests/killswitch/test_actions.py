"""The kill switch's actions when something else moves at the same time or something fails.

Halt, resume request and approval against real state files, a real stand-in of CDB's risk service
that hangs or lies, and real PostgreSQL errors (a trigger that refuses an insert): an action first
records what changed outside the console, a resume request belongs to the halt it was filed for, an
approval never leaves trading running unrecorded, and a halt whose record fails says so.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident, Severity
from killswitch import audit, services
from killswitch.backends import FileBackend
from killswitch.models import Action, AuditRecord, ResumeRequest, TargetState
from tests.incidents.factories import PASSWORD, declare, make_user
from tests.standins.risk_service import RiskServiceStandIn, _json, write_deactivation

pytestmark = pytest.mark.django_db
JUST = "Exchange stable for 20 minutes; fix deployed and verified"
UNRECORDED = "the audit record could not be written and will be recorded when the database accepts writes"


# --- CDB writing its own state file, as core/safety/kill_switch.py does --------------------------


def cdb_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def cdb_write(path: Path, body: str) -> None:
    tmp = path.with_name(f"{path.stem}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)


def cdb_halt(path: Path, *, reason: str = "circuit_breaker", message: str = "Daily loss limit") -> str:
    activated_at = cdb_now()
    cdb_write(
        path,
        f"state=active\nreason={reason}\nmessage={message} (operator: {reason})\n"
        f"activated_at={activated_at}\nupdated_at={cdb_now()}\n",
    )
    return activated_at


def cdb_resume(path: Path) -> None:
    cdb_write(
        path,
        "state=inactive\nreason=none\nmessage=Deactivated by ops: manual restart\n"
        f"activated_at=none\nupdated_at={cdb_now()}\n",
    )


_since = {"seq": 0}


def records(*actions: str, target: str = "production") -> list[AuditRecord]:
    """Audit records of these kinds written since the console first observed the targets."""
    qs = AuditRecord.objects.filter(action__in=actions, target=target, seq__gt=_since["seq"])
    return list(qs.order_by("seq"))


def halt(actor: Any, **kw: Any) -> services.Outcome:
    kw.setdefault("reason", "manual")
    kw.setdefault("message", "halted by a test")
    return services.killswitch_activate(target=kw.pop("target", "production"), actor=actor, **kw)


def request_resume(actor: Any, **kw: Any) -> ResumeRequest:
    return services.killswitch_request_resume(
        target=kw.pop("target", "production"), actor=actor, justification=JUST, **kw
    )


def approve(request: ResumeRequest, actor: Any = None) -> services.Outcome:
    return services.killswitch_approve_resume(
        request_id=request.pk, actor=actor or make_user(role="lead"), reauthenticated=True
    )


def refuse_inserts(table: str, *, when: str = "true", message: str = "storage refused") -> None:
    """A real database error: a trigger that refuses matching inserts into `table`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN "
            f"IF {when} THEN RAISE EXCEPTION '{message}'; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
        )


def allow_inserts(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER refuse_{table} ON {table}")


@pytest.fixture
def spool(settings: Any, tmp_path: Path) -> Path:
    settings.KILLSWITCH_SPOOL = str(tmp_path / "spool" / "killswitch-spool.jsonl")
    return Path(settings.KILLSWITCH_SPOOL)


@pytest.fixture
def observed(ks_files: Any, spool: Path) -> Any:
    """Both targets trading, as the console last observed them."""
    for name in ("production", "drill"):
        services.killswitch_reconcile(target=name)
    _since["seq"] = AuditRecord.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return ks_files


@pytest.fixture
def halted(observed: Any, responder: Any) -> Any:
    halt(responder)
    return observed


# --- 2b. No change goes unrecorded ---------------------------------------------------------------


class TestActionsRecordWhatChangedFirst:
    def test_a_halt_within_the_reconcile_interval_records_cdbs_own_halt(self, observed, responder):
        """Reproduction: CDB's circuit breaker halts, then `killswitch activate` runs before reconcile."""
        activated_at = cdb_halt(observed.production)
        call_command("killswitch", "activate", "--as", responder.username, "--message", "halting too")
        [external] = records(Action.EXTERNAL_CHANGE)
        assert external.state_before["condition"] == "trading"
        assert external.state_after["reason"] == "circuit_breaker"
        assert external.state_after["activated_at"] == activated_at
        assert Incident.objects.filter(severity=Severity.SEV1, is_drill=False).count() == 1
        assert not records(Action.ACTIVATED)  # the console's halt changed nothing: it was halted
        row = TargetState.objects.get(target="production")
        assert (row.reason, row.activated_at) == ("circuit_breaker", activated_at)
        # Reconcile then finds nothing new: the change is recorded once.
        services.killswitch_reconcile(target="production")
        assert len(records(Action.EXTERNAL_CHANGE)) == 1

    def test_a_resume_request_records_an_external_change_before_its_own(self, halted, lead):
        cdb_resume(halted.production)
        cdb_halt(halted.production, reason="risk_limit", message="Exposure")
        request = request_resume(lead)
        kinds = [r.action for r in records(Action.EXTERNAL_CHANGE, Action.RESUME_REQUESTED)]
        assert kinds == [Action.EXTERNAL_CHANGE, Action.RESUME_REQUESTED]
        assert request.halt["reason"] == "risk_limit"

    def test_an_approval_records_an_external_change_before_it_resumes(self, halted, lead):
        request = request_resume(lead)
        # CDB rewrites the same halt with another message: not a new halt, but a change all the same.
        text = halted.read().replace("message=halted by a test", "message=still halted, see ops")
        cdb_write(halted.production, text)
        approve(request)
        kinds = [r.action for r in records(Action.EXTERNAL_CHANGE, Action.RESUME_APPROVED)]
        assert kinds == [Action.EXTERNAL_CHANGE, Action.RESUME_APPROVED]
        assert "state=inactive" in halted.read()

    def test_a_halt_whose_audit_failed_is_recorded_before_the_next_halt(self, observed, responder, spool):
        refuse_inserts("killswitch_auditrecord", when="NEW.action = 'activated'")
        first = halt(responder, message="first halt")
        assert UNRECORDED in first.message and "state=active" in observed.read()
        allow_inserts("killswitch_auditrecord")
        second = halt(make_user(username="second", role="responder"), message="second halt")
        assert not second.changed and "already halted" in second.message
        [record] = records(Action.ACTIVATED)
        assert (record.actor, record.state_after["message"]) == (
            responder,
            "first halt (operator: responder)",
        )
        assert "recorded late" in record.reason
        assert not records(Action.EXTERNAL_CHANGE)
        assert audit.verify()[1] == []


# --- 2b. A halt whose audit cannot be written says so --------------------------------------------


class TestAHaltWhoseAuditFails:
    def test_the_service_says_trading_is_halted_and_the_record_is_pending(self, observed, responder, spool):
        refuse_inserts("killswitch_auditrecord")
        outcome = halt(responder)
        assert outcome.changed and outcome.state.halted
        assert outcome.message == f"Trading is halted on Production; {UNRECORDED}."
        assert "state=active" in observed.read()
        assert spool.read_text().count("\n") == 1

    def test_the_page_says_so_instead_of_a_bare_500(self, client, observed, responder, spool):
        refuse_inserts("killswitch_auditrecord")
        client.force_login(responder)
        response = client.post(
            reverse("killswitch:activate", args=["production"]), {"reason": "manual", "confirm": "yes"}
        )
        assert response.status_code == 200
        assert f"Trading is halted on Production; {UNRECORDED}." in response.content.decode()
        assert "state=active" in observed.read()

    def test_the_cli_says_so_instead_of_a_traceback(self, observed, responder, spool, capsys):
        refuse_inserts("killswitch_auditrecord")
        call_command("killswitch", "activate", "--as", responder.username)
        assert f"Trading is halted on Production; {UNRECORDED}." in capsys.readouterr().out
        assert "state=active" in observed.read()

    def test_the_record_is_written_with_its_real_actor_once_the_database_accepts_it(
        self, observed, responder, spool
    ):
        incident = declare(responder, severity=Severity.SEV1)
        refuse_inserts("killswitch_auditrecord")
        halt(responder, reason="exchange_error", message="Binance 5xx", incident=incident, ip="10.0.0.9")
        assert not AuditRecord.objects.filter(action=Action.ACTIVATED).exists()
        services.killswitch_reconcile_all()  # the database still refuses: nothing lost, nothing recorded
        assert spool.read_text().count("\n") == 1
        allow_inserts("killswitch_auditrecord")
        services.killswitch_reconcile_all()
        services.killswitch_reconcile_all()
        [record] = records(Action.ACTIVATED)
        assert (record.actor, record.ip_address, record.incident_id) == (responder, "10.0.0.9", incident.pk)
        assert record.reason.startswith("exchange_error: Binance 5xx")
        assert not records(Action.EXTERNAL_CHANGE)
        assert spool.read_text() == ""
        assert "Halted trading on Production" in incident.events.order_by("-id").first().message
        assert audit.verify()[1] == []


# --- 1. A resume request belongs to the halt it was filed for ------------------------------------


class TestARequestBelongsToItsHalt:
    def test_a_new_halt_after_the_request_voids_it(self, halted, lead):
        request = request_resume(lead)
        cdb_resume(halted.production)
        cdb_halt(halted.production, reason="risk_limit", message="Exposure")
        with pytest.raises(services.KillSwitchRefused, match="void"):
            approve(request)
        assert "state=active\nreason=risk_limit" in halted.read()
        request.refresh_from_db()
        assert request.status == "void"
        [void] = records("resume_voided")
        assert void.request_id == request.pk and "new halt" in void.reason

    def test_another_activation_time_voids_it_too(self, halted, lead):
        request = request_resume(lead)
        cdb_halt(halted.production, reason="manual", message="halted by a test")  # same reason, later
        with pytest.raises(services.KillSwitchRefused, match="void"):
            approve(request)
        assert "state=active" in halted.read()

    def test_a_console_halt_after_an_external_resume_voids_the_pending_request(self, halted, lead, responder):
        request = request_resume(lead)
        cdb_resume(halted.production)
        halt(responder, message="halted again")
        request.refresh_from_db()
        assert request.status == "void"
        with pytest.raises(services.KillSwitchRefused):
            approve(request)
        assert "state=active" in halted.read()

    def test_a_request_for_an_earlier_halt_does_not_block_a_new_one(self, halted, lead):
        old = request_resume(lead)
        cdb_halt(halted.production, reason="risk_limit", message="Exposure")
        new = request_resume(make_user(role="lead"))
        old.refresh_from_db()
        assert (old.status, new.status) == ("void", "pending")

    def test_the_same_halt_still_resumes(self, halted, lead):
        request = request_resume(lead)
        services.killswitch_reconcile(target="production")
        assert approve(request).state.trading


# --- 1. Approve never fails open ----------------------------------------------------------------


def assert_failed_and_halted_again(request: ResumeRequest, state_file_text: str, caplog: Any) -> AuditRecord:
    assert "state=active\nreason=system_error\nmessage=Resume undone" in state_file_text
    request.refresh_from_db()
    assert request.status == "failed"
    assert not records(Action.RESUME_APPROVED)
    [failure] = records("resume_failed")
    assert failure.request_id == request.pk and failure.state_after["condition"] == "halted"
    assert "halted again" in failure.reason
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)
    assert audit.verify()[1] == []
    row = TargetState.objects.get(target="production")
    assert row.condition == "halted" and row.reason == "system_error"
    # The console made the second halt itself: reconcile does not take it for an external one.
    services.killswitch_reconcile(target="production")
    assert not records(Action.EXTERNAL_CHANGE)
    return failure


class TestApproveFailsClosed:
    def test_a_failed_audit_insert_halts_again_and_is_recorded_on_its_own(self, halted, lead, caplog):
        request = request_resume(lead)
        refuse_inserts("killswitch_auditrecord", when="NEW.action = 'resume_approved'")
        with pytest.raises(services.ResumeFailed, match="halted again"):
            approve(request)
        failure = assert_failed_and_halted_again(request, halted.read(), caplog)
        assert "storage refused" in failure.reason

    def test_a_failed_timeline_write_halts_again(self, halted, lead, caplog):
        incident = declare(lead, severity=Severity.SEV1)
        request = request_resume(lead, incident=incident)
        refuse_inserts("incidents_timelineevent", when="NEW.message LIKE 'Resumed trading%'")
        with pytest.raises(services.ResumeFailed):
            approve(request)
        assert_failed_and_halted_again(request, halted.read(), caplog)
        assert "Resume of Production failed" in incident.events.order_by("-id").first().message

    def test_a_directory_sync_failing_after_the_rename_halts_again(self, halted, lead, caplog, monkeypatch):
        """The file is renamed into place (trading), then fsync of its directory fails. Nothing else on
        a local filesystem makes that call fail for root, so os.fsync is replaced for that one call."""
        request = request_resume(lead)
        real_fsync, failed = os.fsync, []

        def fsync(fd: int) -> None:
            if not failed and stat.S_ISDIR(os.fstat(fd).st_mode):
                failed.append(fd)
                raise OSError(errno.EIO, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        with pytest.raises(services.ResumeFailed):
            approve(request)
        assert failed
        failure = assert_failed_and_halted_again(request, halted.read(), caplog)
        assert "directory" in failure.reason

    def test_the_requester_must_still_be_active(self, halted, lead):
        request = request_resume(lead)
        type(lead).objects.filter(pk=lead.pk).update(is_active=False)
        with pytest.raises(services.KillSwitchRefused, match="no longer"):
            approve(request)
        assert "state=active" in halted.read()
        request.refresh_from_db()
        assert request.status == "void"

    def test_the_requester_must_still_hold_the_permission(self, halted, lead):
        request = request_resume(lead)
        lead.groups.clear()
        with pytest.raises(services.KillSwitchRefused, match="no longer"):
            approve(request)
        assert "state=active" in halted.read()

    def test_the_approver_must_still_hold_the_permission_under_the_lock(self, halted, lead):
        request = request_resume(lead)
        approver = make_user(role="lead")
        assert approver.has_perm("killswitch.approve_resume")  # the permission cache is filled now
        approver.groups.clear()
        with pytest.raises(services.KillSwitchRefused, match="no longer"):
            services.killswitch_approve_resume(request_id=request.pk, actor=approver, reauthenticated=True)
        assert "state=active" in halted.read()

    def test_expiry_is_checked_under_the_lock(self, halted, lead, monkeypatch):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            request = request_resume(lead)
            clock.shift(timedelta(minutes=16))
            # The sweep before the lock finds nothing (as if it ran a moment before the deadline).
            monkeypatch.setattr(services, "resume_requests_expire", lambda **kw: 0)
            with pytest.raises(services.KillSwitchRefused, match="expired"):
                approve(request)
        assert "state=active" in halted.read()
        request.refresh_from_db()
        assert request.status == "expired"
        assert len(records(Action.RESUME_EXPIRED)) == 1


class FaultyRiskService(RiskServiceStandIn):
    """CDB's risk service whose first GET after a deactivation hangs (until released) or lies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after_deactivate: str | None = None
        self._armed: str | None = None
        self.release = threading.Event()

    def _deactivate(self, body: Any) -> Any:
        response = super()._deactivate(body)
        self._armed = self.after_deactivate
        return response

    def _kill_switch_get(self, method: str) -> Any:
        fault, self._armed = self._armed, None
        if fault == "hang":
            self.release.wait(10)
        elif fault == "lie":
            return _json({"active": True, "reason": "manual", "message": "x", "activated_at": cdb_now()})
        return super()._kill_switch_get(method)


@pytest.fixture
def risk(settings: Any, tmp_path: Path, spool: Path) -> Any:
    state = tmp_path / "risk" / ".cdb_kill_switch.state"
    state.parent.mkdir()
    write_deactivation(state, operator="setup", justification="initial state for the test")
    with FaultyRiskService(state, semantics="new") as service:
        settings.KILLSWITCH_TARGETS = f"production={service.url}"
        settings.KILLSWITCH_HTTP_TIMEOUT = 0.5
        services.killswitch_reconcile(target="production")
        _since["seq"] = AuditRecord.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        yield service
        service.release.set()


class TestApproveFailsClosedOnTheRiskService:
    @pytest.mark.parametrize("fault", ["hang", "lie"])
    def test_a_confirming_read_that_times_out_or_lies_halts_again(self, risk, responder, lead, caplog, fault):
        halt(responder)
        request = request_resume(lead)
        risk.after_deactivate = fault
        with pytest.raises(services.ResumeFailed, match="halted again"):
            approve(request)
        risk.release.set()
        assert_failed_and_halted_again(request, risk.state_file.read_text(), caplog)


# --- Who halted from the command line ------------------------------------------------------------


def test_the_cli_halt_records_the_operating_system_user_and_host(observed, responder):
    import getpass
    import socket

    call_command("killswitch", "activate", "--as", responder.username, "--message", "cli halt")
    who = f"OS user {getpass.getuser()} on {socket.gethostname()}"
    assert f"message=cli halt (operator: responder via CLI, {who})\n" in observed.read()
    [record] = records(Action.ACTIVATED)
    assert record.actor == responder and who in record.reason


def test_a_halt_confirmed_despite_a_failed_directory_sync_counts(observed, responder, monkeypatch):
    """The rename landed, so the halt is real: it is recorded, not reported as a failure."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    outcome = halt(responder)
    assert outcome.changed and outcome.state.halted and "state=active" in observed.read()
    assert len(records(Action.ACTIVATED)) == 1


def test_file_backend_reports_a_failed_directory_sync_as_a_backend_error(tmp_path, monkeypatch):
    from killswitch.backends import BackendError

    path = tmp_path / ".cdb_kill_switch.state"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(BackendError, match="directory"):
        FileBackend(path).activate(operator="x", reason="manual", message="m")
    assert "state=active" in path.read_text()


def test_the_approve_page_says_the_resume_failed_and_trading_is_halted_again(client, halted, lead):
    request = request_resume(lead)
    refuse_inserts("killswitch_auditrecord", when="NEW.action = 'resume_approved'")
    client.force_login(make_user(role="lead"))
    response = client.post(
        reverse("killswitch:approve", args=[request.pk]), {"password": PASSWORD}, follow=True
    )
    assert "trading was halted again" in response.content.decode()
    assert "state=active\nreason=system_error" in halted.read()
