"""`manage.py killswitch request-resume` and `approve` prove who `--as` names: that person's password,
typed at the prompt or given on standard input. No password, no action; a wrong one is refused and
counts toward the account's lockout exactly like a failed web login."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from killswitch import services
from killswitch.models import ResumeRequest, ResumeStatus
from tests.incidents.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
JUST = "Exchange stable for 20 minutes; fix deployed and verified"


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def give(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    yield give


@pytest.fixture
def halted(ks_files: Any, responder: Any) -> Any:
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    return ks_files


def request_resume(*extra: str) -> None:
    call_command("killswitch", "request-resume", "--as", "lead", "--justification", JUST, *extra)


class TestRequestResume:
    def test_without_a_password_nothing_is_filed(self, halted, lead, stdin):
        stdin("\n")
        with pytest.raises(CommandError, match="No password"):
            request_resume("--password-stdin")
        assert not ResumeRequest.objects.exists()

    def test_a_wrong_password_is_refused_and_counted(self, halted, lead, stdin):
        stdin("not-the-password\n")
        with pytest.raises(CommandError, match="Wrong password for lead"):
            request_resume("--password-stdin")
        assert not ResumeRequest.objects.exists()
        assert AccessAttempt.objects.get(username="lead").failures_since_start == 1

    def test_the_right_password_files_the_request(self, halted, lead, stdin, capsys):
        stdin(f"{PASSWORD}\n")
        request_resume("--password-stdin")
        assert ResumeRequest.objects.get().requested_by == lead
        assert "Resume request #" in capsys.readouterr().out

    def test_it_prompts_when_no_stdin_option_is_given(self, halted, lead, monkeypatch):
        prompts = []
        monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or PASSWORD)
        request_resume()
        assert prompts == ["Password for lead: "] and ResumeRequest.objects.exists()


class TestApprove:
    @pytest.fixture
    def pending(self, halted: Any, lead: Any) -> ResumeRequest:
        return services.killswitch_request_resume(target="production", actor=lead, justification=JUST)

    @pytest.fixture
    def approver(self) -> Any:
        return make_user(username="approver", role="lead")

    def approve(self, pending: ResumeRequest) -> None:
        call_command("killswitch", "approve", "--as", "approver", str(pending.pk), "--password-stdin")

    def test_without_a_password_nothing_is_approved(self, pending, approver, stdin):
        stdin("")
        with pytest.raises(CommandError, match="No password"):
            self.approve(pending)
        pending.refresh_from_db()
        assert pending.status == ResumeStatus.PENDING

    def test_wrong_passwords_lock_the_account_for_the_cli_and_the_web(
        self, pending, approver, stdin, settings
    ):
        for n in range(settings.AXES_FAILURE_LIMIT):
            stdin(f"guess-{n}\n")
            with pytest.raises(CommandError):
                self.approve(pending)
        stdin(f"{PASSWORD}\n")
        with pytest.raises(CommandError, match="locked for 15 minutes"):
            self.approve(pending)
        pending.refresh_from_db()
        assert pending.status == ResumeStatus.PENDING
        login = Client().post(reverse("login"), {"username": "approver", "password": PASSWORD})
        assert login.status_code == 429

    def test_the_right_password_approves(self, pending, approver, stdin, halted):
        stdin(f"{PASSWORD}\n")
        self.approve(pending)
        pending.refresh_from_db()
        assert pending.status == ResumeStatus.APPROVED and "state=inactive" in halted.read()
