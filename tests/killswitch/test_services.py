from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from incidents.models import Severity
from killswitch import audit, services
from killswitch.backends import BackendError, InvalidInput
from killswitch.models import TIMELINE_KIND, Action, AuditRecord, ResumeRequest, ResumeStatus, TargetState
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db
JUST = "Exchange stable for 20 minutes; fix deployed and verified"


def actions(*kinds):
    return list(AuditRecord.objects.filter(action__in=kinds).order_by("seq"))


def halt(actor, **kw):
    kw.setdefault("reason", "manual")
    kw.setdefault("message", "drill")
    return services.killswitch_activate(target=kw.pop("target", "production"), actor=actor, **kw)


class TestActivate:
    def test_halts_records_and_links_the_incident(self, ks_files, responder):
        incident = declare(responder, severity=Severity.SEV1)
        outcome = halt(
            responder, reason="exchange_error", message="Binance 5xx", incident=incident, ip="10.0.0.7"
        )
        assert outcome.changed and outcome.state.halted
        assert "message=Binance 5xx (operator: responder)\n" in ks_files.read()
        [record] = actions(Action.ACTIVATED)
        assert (record.actor, record.actor_role, record.target, record.ip_address) == (
            responder,
            "responder",
            "production",
            "10.0.0.7",
        )
        assert record.state_before["condition"] == "trading" and record.state_after["condition"] == "halted"
        assert record.reason == "exchange_error: Binance 5xx" and record.incident_id == incident.pk
        event = incident.events.order_by("-id").first()
        assert event.kind == TIMELINE_KIND and "Halted trading on Production" in event.message
        row = TargetState.objects.get(target="production")
        assert (row.condition, row.changed_by) == ("halted", "responder")

    def test_is_idempotent(self, ks_files, responder):
        halt(responder)
        before = ks_files.read()
        outcome = halt(make_user(role="responder"), reason="risk_limit")
        assert not outcome.changed and "already halted" in outcome.message
        assert ks_files.read() == before
        assert len(actions(Action.ACTIVATED)) == 1

    def test_needs_the_permission(self, ks_files, viewer):
        with pytest.raises(PermissionDenied):
            halt(viewer)
        assert "state=inactive" in ks_files.read() and not actions(Action.ACTIVATED)

    @pytest.mark.parametrize(
        ("reason", "message"), [("pager", "x"), ("manual", "a\nstate=inactive"), ("manual", "x" * 501)]
    )
    def test_bad_input_changes_nothing(self, ks_files, responder, reason, message):
        with pytest.raises(InvalidInput):
            halt(responder, reason=reason, message=message)
        assert "state=inactive" in ks_files.read() and not actions(Action.ACTIVATED)

    def test_an_unwritable_target_is_an_error_and_records_nothing(self, ks_files, responder):
        # A directory where the file should be: unreadable and unwritable even for root.
        ks_files.production.unlink()
        ks_files.production.mkdir()
        with pytest.raises(BackendError):
            halt(responder)
        assert not actions(Action.ACTIVATED)

    def test_unknown_target(self, ks_files, responder):
        with pytest.raises(ValueError, match="Unknown kill-switch target"):
            halt(responder, target="staging")


class TestResume:
    @pytest.fixture
    def halted(self, ks_files, responder):
        halt(responder)
        return ks_files

    def test_four_eyes_flow(self, halted, lead):
        incident = declare(lead, severity=Severity.SEV1)
        request = services.killswitch_request_resume(
            target="production", actor=lead, justification=JUST, incident=incident
        )
        assert request.pre_recovery[0] == {"text": "Root cause identified", "done": False}
        with pytest.raises(services.KillSwitchRefused, match="different person"):
            services.killswitch_approve_resume(request_id=request.pk, actor=lead, reauthenticated=True)
        second = make_user(role="lead")
        outcome = services.killswitch_approve_resume(
            request_id=request.pk, actor=second, reauthenticated=True
        )
        assert outcome.changed and outcome.state.trading
        assert (
            f"message=Deactivated by {second.username}: {JUST} (request #{request.pk} by lead)\n"
            in halted.read()
        )
        request.refresh_from_db()
        assert (request.status, request.decided_by) == (ResumeStatus.APPROVED, second)
        [approved] = actions(Action.RESUME_APPROVED)
        assert approved.request_id == request.pk and approved.state_after["condition"] == "trading"
        assert [e.kind for e in incident.events.order_by("id")][-1] == TIMELINE_KIND

    def test_justification_needs_20_characters(self, halted, lead):
        with pytest.raises(InvalidInput, match="20 characters"):
            services.killswitch_request_resume(target="production", actor=lead, justification="fixed it")

    def test_responders_cannot_request_or_approve(self, halted, responder, lead):
        with pytest.raises(PermissionDenied):
            services.killswitch_request_resume(target="production", actor=responder, justification=JUST)
        request = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
        with pytest.raises(PermissionDenied):
            services.killswitch_approve_resume(request_id=request.pk, actor=responder, reauthenticated=True)

    def test_one_pending_request_per_target(self, halted, lead):
        services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
        with pytest.raises(services.KillSwitchRefused, match="already waiting"):
            services.killswitch_request_resume(
                target="production", actor=make_user(role="lead"), justification=JUST
            )

    def test_nothing_to_resume_when_trading(self, ks_files, lead):
        with pytest.raises(services.KillSwitchRefused, match="not halted"):
            services.killswitch_request_resume(target="production", actor=lead, justification=JUST)

    def test_the_service_refuses_an_approver_not_reauthenticated_whatever_their_last_login(
        self, halted, lead
    ):
        """The per-session proof (console.reauth, the CLI's password) is the caller's; the service
        refuses without it, a recent last_login (another browser's) notwithstanding."""
        request = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
        approver = make_user(role="lead", last_login=timezone.now())
        with pytest.raises(services.ReauthRequired):
            services.killswitch_approve_resume(request_id=request.pk, actor=approver)
        services.killswitch_approve_resume(request_id=request.pk, actor=approver, reauthenticated=True)

    def test_requests_expire_and_are_recorded(self, halted, lead):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            request = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
            clock.shift(timedelta(minutes=15, seconds=1))
            approver = make_user(role="lead")
            with pytest.raises(services.KillSwitchRefused, match="expired"):
                services.killswitch_approve_resume(
                    request_id=request.pk, actor=approver, reauthenticated=True
                )
        request.refresh_from_db()
        assert request.status == ResumeStatus.EXPIRED
        assert len(actions(Action.RESUME_EXPIRED)) == 1
        assert "state=active" in halted.read()
        assert services.resume_requests_expire() == 0  # recorded once

    def test_reject_and_withdraw(self, halted, lead):
        request = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
        with pytest.raises(PermissionDenied):
            services.killswitch_reject_resume(request_id=request.pk, actor=make_user(role="responder"))
        services.killswitch_reject_resume(
            request_id=request.pk, actor=make_user(role="lead"), note="metrics not normal"
        )
        with pytest.raises(services.KillSwitchRefused, match="rejected"):
            services.killswitch_approve_resume(
                request_id=request.pk, actor=make_user(role="lead"), reauthenticated=True
            )
        again = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
        services.killswitch_reject_resume(request_id=again.pk, actor=lead, note="withdrawn")
        assert [r.reason for r in actions(Action.RESUME_REJECTED)] == ["metrics not normal", "withdrawn"]
        assert ResumeRequest.objects.filter(status=ResumeStatus.PENDING).count() == 0

    def test_a_resume_that_cannot_be_recorded_is_undone(self, halted, lead):
        """The audit row fails after the backend resumed: trading is halted again, nothing recorded."""
        request = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION refuse_approval() RETURNS trigger AS $$ BEGIN "
                "IF NEW.action = 'resume_approved' THEN RAISE EXCEPTION 'audit storage refused'; END IF; "
                "RETURN NEW; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_approval BEFORE INSERT ON killswitch_auditrecord "
                "FOR EACH ROW EXECUTE FUNCTION refuse_approval()"
            )
        with pytest.raises(Exception, match="audit storage refused"):
            services.killswitch_approve_resume(
                request_id=request.pk, actor=make_user(role="lead"), reauthenticated=True
            )
        assert "state=active" in halted.read()
        assert "reason=system_error" in halted.read()
        assert not actions(Action.RESUME_APPROVED)


class TestPermissionAudit:
    def test_grants_and_revokes_are_recorded_with_the_actor(self, admin_user):
        from killswitch.middleware import current_actor

        token = current_actor.set(admin_user)
        try:
            group = Group.objects.create(name="night shift")
            approve = Permission.objects.get(codename="approve_resume")
            group.permissions.add(approve, Permission.objects.get(codename="view_incident"))
            user = make_user()
            user.groups.add(group)
            user.user_permissions.add(Permission.objects.get(codename="activate_killswitch"))
            group.permissions.remove(approve)
        finally:
            current_actor.reset(token)
        records = [(r.action, r.reason, r.actor_name) for r in AuditRecord.objects.order_by("seq")][-4:]
        assert records == [
            (Action.PERMISSION_GRANTED, "group night shift: killswitch.approve_resume", "admin"),
            (
                Action.PERMISSION_GRANTED,
                f"user {user.username} via group night shift: killswitch.approve_resume",
                "admin",
            ),
            (Action.PERMISSION_GRANTED, f"user {user.username}: killswitch.activate_killswitch", "admin"),
            (Action.PERMISSION_REVOKED, "group night shift: killswitch.approve_resume", "admin"),
        ]
        assert audit.verify()[1] == []

    def test_other_permissions_are_not_recorded(self):
        n = AuditRecord.objects.count()
        make_user().user_permissions.add(Permission.objects.get(codename="view_incident"))
        assert AuditRecord.objects.count() == n


def test_cli_runs_the_same_rules(ks_files, responder, lead, capsys):
    from django.core.management import CommandError, call_command

    call_command(
        "killswitch", "activate", "--as", "responder", "--reason", "risk_limit", "--message", "cli halt"
    )
    assert "reason=risk_limit" in ks_files.read()
    call_command("killswitch", "status")
    assert "production   halted" in capsys.readouterr().out
    import io
    import sys

    lead.set_password("lead-password-123")
    lead.save()
    stdin = sys.stdin
    try:
        # Filing needs the requester's password too (see test_cli_identity.py).
        sys.stdin = io.StringIO("lead-password-123\n")
        call_command(
            "killswitch", "request-resume", "--as", "lead", "--justification", JUST, "--password-stdin"
        )
        request = ResumeRequest.objects.get()
        sys.stdin = io.StringIO("lead-password-123\n")
        with pytest.raises(CommandError, match="different person"):
            call_command("killswitch", "approve", "--as", "lead", str(request.pk), "--password-stdin")
        second = make_user(username="lead2", role="lead")
        second.set_password("second-password-456")
        second.save()
        sys.stdin = io.StringIO("wrong\n")
        with pytest.raises(CommandError, match="Wrong password"):
            call_command("killswitch", "approve", "--as", "lead2", str(request.pk), "--password-stdin")
        sys.stdin = io.StringIO("second-password-456\n")
        call_command("killswitch", "approve", "--as", "lead2", str(request.pk), "--password-stdin")
    finally:
        sys.stdin = stdin
    assert "state=inactive" in ks_files.read()
    with pytest.raises(CommandError, match="permission"):
        call_command("killswitch", "activate", "--as", make_user(role="viewer").username)
