"""Re-authentication per session: "this person typed their password here, recently".

A password proves the person at the keyboard of *this* session, not the account in general: another
browser's login (or `last_login`) proves nothing here. The proof lasts KILLSWITCH_REAUTH_SECONDS and
is kept in the session itself. Logging in through the login page counts as entering the password in
this session; so does `check_password` below, which every re-entry goes through so that wrong
passwords count toward the account's lockout (django-axes) exactly like failed logins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from console import otp

SESSION_KEY = "console_reauth_at"
CODE_KEY = "console_reauth_code"


def mark(request: HttpRequest, *, code: bool) -> None:
    """The password (and the TOTP code, if `code`) was just entered in this session."""
    request.session[SESSION_KEY] = time.time()
    request.session[CODE_KEY] = code


def is_fresh(request: HttpRequest) -> bool:
    """Whether this session entered the password within KILLSWITCH_REAUTH_SECONDS (and, for a person
    with a second factor, verified the code in this session too)."""
    at = request.session.get(SESSION_KEY)
    if not isinstance(at, int | float) or not 0 <= time.time() - at <= settings.KILLSWITCH_REAUTH_SECONDS:
        return False
    return bool(request.session.get(CODE_KEY)) or otp.device_for(request.user) is None


def window_minutes() -> int:
    return max(1, round(settings.KILLSWITCH_REAUTH_SECONDS / 60))


def lockout_text() -> str:
    return (
        f"Too many wrong passwords or codes: this account is locked for {settings.LOGIN_LOCKOUT_MINUTES} "
        "minutes, for approving and for logging in. A superuser can lift it early."
    )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str = ""


def check_password(request: HttpRequest, *, password: str, code: str = "", what: str) -> Verdict:
    """Check the signed-in person's password (and TOTP code, if they have a device) for `what`
    ("nothing was approved"). A failure counts toward the lockout; success marks this session."""
    user: Any = request.user
    if not password:
        return Verdict(False, f"Enter your password; {what}.")
    authed = authenticate(request, username=user.get_username(), password=password)
    if getattr(request, "axes_locked_out", False):
        return Verdict(False, lockout_text())
    if authed is None or authed.pk != user.pk:
        return Verdict(False, f"That password is not right; {what}.")
    device = otp.device_for(user)
    if device is not None and not otp.verify(device, code):
        # A wrong code is a failed attempt too: it counts toward the account's lockout.
        user_login_failed.send(
            sender=__name__, credentials={"username": user.get_username()}, request=request
        )
        if getattr(request, "axes_locked_out", False):
            return Verdict(False, lockout_text())
        return Verdict(False, f"That code is not right (or was already used); {what}.")
    mark(request, code=device is not None)
    return Verdict(True)
