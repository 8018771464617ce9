"""The console's own start-up checks: secrets that production must set explicitly.

`manage.py check` (and so `runserver`, `migrate`, `check --deploy`) reports them as errors, and so
does every other command but `makemigrations`, which only writes code from the models (see
console/management/commands/makemigrations.py); the web
(config/wsgi.py, config/asgi.py) and Celery (config/celery.py) call `require_secrets()` before
serving anything, so a process without its secrets refuses to start instead of failing on the
first request that signs a cookie or an audit record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

MISSING = {
    "console.E001": (
        "SECRET_KEY",
        "SECRET_KEY is not set and DEBUG is off: set it to a long random value "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'). "
        "A development key stands in only with DEBUG=true.",
    ),
    "console.E002": (
        "AUDIT_HMAC_KEY",
        "AUDIT_HMAC_KEY is not set and DEBUG is off: set it explicitly, keep it outside the database, "
        "and never change it (records signed with another key no longer verify). A key derived from "
        "SECRET_KEY is used only with DEBUG=true.",
    ),
}


def missing_secrets() -> dict[str, str]:
    """{check id: message} for each secret that is empty. Settings leave them empty only with DEBUG off."""
    settings.DEBUG  # noqa: B018  (loads the settings)
    # The raw values: django.conf raises on reading an empty SECRET_KEY, which is what is checked here.
    raw = settings._wrapped  # type: ignore[misc]
    return {check_id: message for check_id, (name, message) in MISSING.items() if not getattr(raw, name, "")}


_NOT_NEEDED: ContextVar[bool] = ContextVar("secrets_not_needed", default=False)


@contextmanager
def secrets_not_needed() -> Iterator[None]:
    """For a command that neither serves, signs nor writes data: the secrets check passes."""
    token = _NOT_NEEDED.set(True)
    try:
        yield
    finally:
        _NOT_NEEDED.reset(token)


@register(Tags.security)
def check_secrets(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if _NOT_NEEDED.get():
        return []
    return [Error(message, id=check_id) for check_id, message in missing_secrets().items()]


def require_secrets() -> None:
    """Refuse to start a process that would serve or sign without its secrets."""
    missing = missing_secrets()
    if missing:
        raise ImproperlyConfigured(" ".join(missing.values()))
