"""Approving a resume needs the password entered in *this* session within KILLSWITCH_REAUTH_SECONDS
(logging in counts; another browser's login does not), wrong passwords are throttled, and a person
with a second factor gives the code too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from killswitch import services
from killswitch.models import ResumeStatus
from tests.console.test_login import code_for
from tests.incidents.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
JUST = "Root cause fixed; all nine services healthy for 20 minutes"


@pytest.fixture
def pending(ks_files: Any, responder: Any, lead: Any) -> Any:
    services.killswitch_activate(target="production", actor=responder, reason="manual", message="x")
    return services.killswitch_request_resume(target="production", actor=lead, justification=JUST)


@pytest.fixture
def approver() -> Any:
    return make_user(username="approver", role="lead")


def login(client: Client, username: str = "approver") -> None:
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content


def approve(client: Client, request: Any, **data: str) -> Any:
    response = client.post(reverse("killswitch:approve", args=[request.pk]), data)
    assert response.status_code == 302
    request.refresh_from_db()
    return client.get(response["Location"])


def test_a_login_in_another_browser_does_not_count(pending, approver, ks_files):
    """The approver logged in a minute ago elsewhere; this session never saw the password."""
    login(Client())  # another browser: last_login is now
    session = Client()
    session.force_login(approver)  # a session that reached the console without its password
    page = approve(session, pending)
    assert pending.status == ResumeStatus.PENDING and "state=active" in ks_files.read()
    assert "Re-enter your password" in page.content.decode()


def test_logging_in_in_this_session_counts_as_entering_the_password(pending, approver, ks_files):
    client = Client()
    login(client)
    page = client.get(reverse("killswitch:index")).content.decode()
    assert f'id="pw-{pending.pk}"' not in page
    approve(client, pending)
    assert pending.status == ResumeStatus.APPROVED and "state=inactive" in ks_files.read()


def test_the_password_entered_in_this_session_is_good_for_reauth_seconds(pending, approver, settings):
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        login(client)
        clock.shift(timedelta(seconds=settings.KILLSWITCH_REAUTH_SECONDS + 1))
        page = client.get(reverse("killswitch:index")).content.decode()
        assert f'id="pw-{pending.pk}"' in page and "not entered in this session" in page
        approve(client, pending)
        assert pending.status == ResumeStatus.PENDING
        approve(client, pending, password=PASSWORD)
        assert pending.status == ResumeStatus.APPROVED


def test_wrong_passwords_at_approval_are_throttled_and_shown(pending, approver, settings, caplog):
    client = Client()
    client.force_login(approver)
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        page = approve(client, pending, password=f"guess-{n}")
        assert "That password is not right; nothing was approved." in page.content.decode()
    page = approve(client, pending, password="last-guess").content.decode()
    assert "locked for 15 minutes" in page
    # Now even the right password is refused, at approval and at login.
    page = approve(client, pending, password=PASSWORD).content.decode()
    assert pending.status == ResumeStatus.PENDING and "locked for 15 minutes" in page
    assert Client().post(reverse("login"), {"username": "approver", "password": PASSWORD}).status_code == 429
    assert any("approver" in r.getMessage() for r in caplog.records if r.name.startswith("axes"))


class TestSecondFactor:
    def test_approval_asks_for_the_code_together_with_the_password(self, pending, approver):
        device = TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
        client = Client()
        client.force_login(approver)
        page = client.get(reverse("killswitch:index")).content.decode()
        assert f'id="pw-{pending.pk}"' in page and f'id="code-{pending.pk}"' in page
        with time_machine.travel(timezone.now(), tick=False) as clock:
            approve(client, pending, password=PASSWORD)
            assert pending.status == ResumeStatus.PENDING
            clock.shift(timedelta(seconds=2))
            approve(client, pending, password=PASSWORD, code=code_for(device))
        assert pending.status == ResumeStatus.APPROVED

    def test_a_login_with_the_code_counts_for_the_approval(self, pending, approver):
        device = TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
        client = Client()
        login(client)
        client.post(reverse("login_code"), {"code": code_for(device)})
        approve(client, pending)
        assert pending.status == ResumeStatus.APPROVED

    def test_when_required_an_approver_without_a_device_is_sent_to_enrol(self, pending, approver, settings):
        settings.OTP_REQUIRED_FOR_APPROVERS = True
        client = Client()
        login(client)
        page = client.get(reverse("killswitch:index")).content.decode()
        assert reverse("console:second_factor") in page and f'data-testid="approve-{pending.pk}"' not in page
        response = client.post(reverse("killswitch:approve", args=[pending.pk]), {"password": PASSWORD})
        assert response.status_code == 302 and response.url.startswith(reverse("console:second_factor"))
        pending.refresh_from_db()
        assert pending.status == ResumeStatus.PENDING
