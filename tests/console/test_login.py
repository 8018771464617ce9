"""Logins: failures are logged and throttled per account and per address (django-axes), for the console
and Django admin alike; a person with a TOTP device also gives a code (django-otp)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from console import reauth
from tests.incidents.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
LOGIN = reverse("login")
CODE = reverse("login_code")


def attempt(client: Any, username: str, password: str, ip: str = "10.1.1.1", **extra: Any) -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def logged_in_as(client: Any) -> str | None:
    response = client.get(reverse("incidents:home"))
    return response.context["user"].get_username() if response.status_code == 200 else None


def code_for(device: TOTPDevice, at: float | None = None) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if at is not None:
        totp.time = at
    return f"{totp.token():0{device.digits}d}"


def test_a_right_password_logs_in_and_counts_as_entered_in_this_session(client, lead):
    response = attempt(client, "lead", PASSWORD)
    assert response.status_code == 302 and response.url == reverse("incidents:home")
    assert logged_in_as(client) == "lead"
    assert client.session[reauth.SESSION_KEY]


def test_a_failed_login_is_logged_with_account_and_address(client, lead, caplog):
    with caplog.at_level(logging.WARNING, logger="axes"):
        response = attempt(client, "lead", "wrong", ip="10.9.8.7")
    assert response.status_code == 200 and "correct username and password" in response.content.decode()
    assert any("lead" in r.getMessage() and "10.9.8.7" in r.getMessage() for r in caplog.records)


def test_an_account_is_locked_after_five_failures_from_any_addresses(client, lead, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "lead", f"guess-{n}", ip=f"10.0.0.{n + 1}")
    response = attempt(client, "lead", PASSWORD, ip="10.0.0.99")
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body and "15 minutes" in body
    assert logged_in_as(client) is None
    # Another account from the same addresses is not affected.
    make_user(username="other")
    assert attempt(client, "other", PASSWORD, ip="10.0.0.1").status_code == 302


def test_an_address_is_locked_after_five_failures_on_any_accounts(client, lead, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, f"nobody-{n}", "guess", ip="10.6.6.6")
    assert attempt(client, "lead", PASSWORD, ip="10.6.6.6").status_code == 429
    assert logged_in_as(client) is None
    assert attempt(client, "lead", PASSWORD, ip="10.7.7.7").status_code == 302


def test_a_lockout_ends_after_the_cool_off(client, lead, settings):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for n in range(settings.AXES_FAILURE_LIMIT):
            attempt(client, "lead", f"guess-{n}")
        assert attempt(client, "lead", PASSWORD).status_code == 429
        clock.shift(timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES, seconds=1))
        assert attempt(client, "lead", PASSWORD).status_code == 302


def test_django_admin_signs_in_through_the_console_login(client, admin_user, settings):
    """Admin's own login form is not served: the console's page (its lockout, its second factor) is."""
    response = client.get("/admin/login/", {"next": "/admin/"})
    assert response.status_code == 302 and response.url == f"{LOGIN}?next=/admin/"
    # Posting credentials to admin's login URL authenticates nothing and counts nothing.
    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD})
    assert response.status_code == 302 and logged_in_as(client) is None


def test_a_locked_out_account_cannot_reach_django_admin(client, admin_user, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(f"{LOGIN}?next=/admin/", {"username": "admin", "password": f"guess-{n}"})
    response = client.post(f"{LOGIN}?next=/admin/", {"username": "admin", "password": PASSWORD})
    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302


def test_a_logged_in_person_without_staff_sees_why_admin_is_closed(client, responder):
    client.force_login(responder)
    response = client.get("/admin/login/", {"next": "/admin/"})
    assert response.status_code == 403
    assert "staff" in response.content.decode()


class TestSecondFactor:
    @pytest.fixture
    def device(self, lead: Any) -> TOTPDevice:
        return TOTPDevice.objects.create(user=lead, name="phone", confirmed=True)

    def test_a_person_with_a_device_gives_the_code_after_the_password(self, client, device):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            response = attempt(client, "lead", PASSWORD)
            assert response.status_code == 302 and response.url == CODE
            assert logged_in_as(client) is None  # the password alone does not log in
            page = client.get(CODE)
            assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.content.decode()
            wrong = client.post(CODE, {"code": "000000" if code_for(device) != "000000" else "111111"})
            assert wrong.status_code == 422 and "not right" in wrong.content.decode()
            assert logged_in_as(client) is None
            clock.shift(timedelta(seconds=2))  # django-otp's own back-off after a wrong code
            response = client.post(CODE, {"code": code_for(device)})
            assert response.status_code == 302 and response.url == reverse("incidents:home")
            assert logged_in_as(client) == "lead"
            assert client.session[reauth.SESSION_KEY]

    def test_wrong_codes_count_toward_the_account_lockout(self, client, device, settings):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            for _ in range(settings.AXES_FAILURE_LIMIT):
                attempt(client, "lead", PASSWORD)
                client.post(CODE, {"code": "12345x"})
                clock.shift(timedelta(seconds=40))
            response = attempt(client, "lead", PASSWORD)
            assert response.status_code == 429 and "Too many failed logins" in response.content.decode()

    def test_the_code_step_expires(self, client, device):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            attempt(client, "lead", PASSWORD)
            clock.shift(timedelta(minutes=6))
            response = client.post(CODE, {"code": code_for(device)})
            assert response.status_code == 302 and response.url == LOGIN
            assert logged_in_as(client) is None

    def test_the_code_page_without_a_password_step_goes_back_to_login(self, client):
        response = client.get(CODE)
        assert response.status_code == 302 and response.url == LOGIN


class TestEnrolment:
    URL = reverse("console:second_factor")

    def test_the_page_shows_a_qr_code_image_and_the_key_without_inline_script_or_style(self, client, lead):
        client.force_login(lead)
        body = client.get(self.URL).content.decode()
        device = TOTPDevice.objects.get(user=lead)
        assert not device.confirmed
        assert '<img class="qr" src="data:image/svg+xml' in body
        assert "<script" not in body.split("</head>")[1] and "style=" not in body
        from base64 import b32encode

        assert b32encode(device.bin_key).decode() in body.replace(" ", "")
        # Reloading keeps the same key: the person may have scanned it already.
        client.get(self.URL)
        assert TOTPDevice.objects.get(user=lead).key == device.key

    def test_a_wrong_code_or_password_does_not_enrol(self, client, lead):
        client.force_login(lead)
        client.get(self.URL)
        device = TOTPDevice.objects.get(user=lead)
        with time_machine.travel(timezone.now(), tick=False):
            response = client.post(self.URL, {"code": code_for(device), "password": "wrong"})
        assert response.status_code == 422 and not TOTPDevice.objects.get(user=lead).confirmed
        response = client.post(self.URL, {"code": "abc", "password": PASSWORD})
        assert response.status_code == 422 and not TOTPDevice.objects.get(user=lead).confirmed

    def test_the_right_code_enrols_and_login_then_asks_for_it(self, client, lead):
        client.force_login(lead)
        client.get(self.URL)
        device = TOTPDevice.objects.get(user=lead)
        response = client.post(self.URL, {"code": code_for(device), "password": PASSWORD})
        assert response.status_code == 302
        assert TOTPDevice.objects.get(user=lead).confirmed
        assert "enrolled" in client.get(self.URL).content.decode()
        client.post(reverse("logout"))
        assert attempt(client, "lead", PASSWORD).url == CODE

    def test_removing_the_device_needs_the_password_and_a_code(self, client, lead):
        device = TOTPDevice.objects.create(user=lead, name="phone", confirmed=True)
        client.force_login(lead)
        url = reverse("console:second_factor_remove")
        with time_machine.travel(timezone.now(), tick=False) as clock:
            assert client.post(url, {"password": PASSWORD, "code": "x"}).status_code == 302
            assert TOTPDevice.objects.filter(user=lead).exists()
            clock.shift(timedelta(seconds=40))
            client.post(url, {"password": PASSWORD, "code": code_for(device)})
        assert not TOTPDevice.objects.filter(user=lead).exists()
