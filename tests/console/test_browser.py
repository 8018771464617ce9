"""The second factor in a real browser: enrolment shows a scannable QR code under the console's CSP
(an <img>, no inline script or style), and the next login asks for the code."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from tests.console.test_login import code_for
from tests.incidents.factories import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.django_db(transaction=True),
]


def test_enrolling_a_second_factor_and_logging_in_with_it(open_session: Any, lead: Any) -> None:
    session = open_session(lead)
    page = session.page
    page.locator(".topbar .who").click()  # the account page: contact points, and the second factor
    page.get_by_test_id("second-factor-link").click()
    expect(page).to_have_url(re.compile(r"/console/second-factor/$"))
    qr = page.locator("img.qr")
    expect(qr).to_be_visible()
    # The SVG decoded and drew: a broken image has no natural size.
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    device = TOTPDevice.objects.get(user=lead, confirmed=False)
    key = page.locator("[data-testid=totp-key]").inner_text().replace(" ", "")
    from base64 import b32encode

    assert key == b32encode(device.bin_key).decode()

    page.locator("#id_code").fill(code_for(device))
    page.locator("#id_password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("button", has_text="Enrol").click()
    expect(page.locator("#flash")).to_contain_text("Second factor enrolled")
    expect(page.locator("[data-testid=enrolled]")).to_be_visible()
    assert session.problems.all() == []

    # Logging in again: the password, then the code.
    with page.expect_navigation():
        page.locator(".topbar button", has_text="Log out").click()
    page.goto("/login/")
    page.locator("#id_username").fill(lead.get_username())
    page.locator("#id_password").fill(PASSWORD)
    with page.expect_navigation(url=re.compile(r"/login/code/$")):
        page.locator("button[type=submit]").click()
    device.refresh_from_db()
    page.locator("#id_code").fill(code_for(device, at=device.t0 + (device.last_t + 1) * device.step))
    with page.expect_navigation():
        page.locator("button[type=submit]").click()
    expect(page.locator(".topbar .who")).to_have_text(lead.get_username())
    assert session.problems.all() == []
