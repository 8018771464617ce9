"""Session engine: Django's database sessions plus a user_id column (see ConsoleSession)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DBStore


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls):  # type: ignore[no-untyped-def]
        from incidents.models import ConsoleSession

        return ConsoleSession

    def create_model_instance(self, data: dict[str, Any]):  # type: ignore[no-untyped-def]
        obj = super().create_model_instance(data)
        try:
            obj.user_id = int(data.get(SESSION_KEY))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            obj.user_id = None
        return obj
