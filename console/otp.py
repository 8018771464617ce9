"""The optional second factor: one TOTP device per person (django-otp), enrolled with a QR code."""

from __future__ import annotations

from base64 import b32encode
from typing import Any

import segno
from django.conf import settings
from django_otp.plugins.otp_totp.models import TOTPDevice


def device_for(user: Any) -> TOTPDevice | None:
    """The person's confirmed device, if any."""
    if not getattr(user, "pk", None):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("pk").first()


def pending_device(user: Any) -> TOTPDevice:
    """The device being enrolled: the same key on every reload, so a scanned code stays valid."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)


def verify(device: TOTPDevice, code: str) -> bool:
    """Check a 6-digit code. django-otp refuses a code used before and backs off after failures."""
    code = (code or "").strip().replace(" ", "")
    return code.isdigit() and bool(device.verify_token(code))


def required_for(user: Any) -> bool:
    """Whether this person must have a device: OTP_REQUIRED_FOR_APPROVERS and they may approve."""
    return bool(settings.OTP_REQUIRED_FOR_APPROVERS) and user.has_perm("killswitch.approve_resume")


def qr_data_uri(device: TOTPDevice) -> str:
    """The otpauth:// URL as an SVG QR code in a data: URI, an <img> the CSP allows (no inline script
    or style)."""
    return segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)


def key_text(device: TOTPDevice) -> str:
    """The key in base32, in groups of four, for typing into an app that cannot scan."""
    key = b32encode(device.bin_key).decode()
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))
