"""Parsing of the notification settings (imported by config/settings.py: no models here)."""

from __future__ import annotations


def parse_channels(value: str) -> dict[str, str]:
    """NOTIFY_CHANNELS: `name=<apprise url>;name=<url>`; a later name wins."""
    channels: dict[str, str] = {}
    for part in (p.strip() for p in value.split(";") if p.strip()):
        name, sep, url = part.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"NOTIFY_CHANNELS: {part!r} is not name=<apprise url>")
        channels[name.strip()] = url.strip()
    return channels
