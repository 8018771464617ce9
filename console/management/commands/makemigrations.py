"""Django's makemigrations, whose system checks leave out the production secrets.

It writes migration files from the models and reads no secret, so a developer (and
`makemigrations --check` in CI) runs it without SECRET_KEY and AUDIT_HMAC_KEY; every other check
runs as before. The processes that serve or sign still refuse to start without them.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands.makemigrations import Command as DjangoMakemigrations

from console.checks import secrets_not_needed


class Command(DjangoMakemigrations):
    def check(self, *args: Any, **kwargs: Any) -> None:
        with secrets_not_needed():
            super().check(*args, **kwargs)
