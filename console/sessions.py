"""Session engine: Django's database sessions plus a user_id column (see console.models.ConsoleSession)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DBStore


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls):  # type: ignore[no-untyped-def]
        from console.models import ConsoleSession

        return ConsoleSession

    def create_model_instance(self, data: dict[str, Any]):  # type: ignore[no-untyped-def]
        obj = super().create_model_instance(data)
        user_id = str(data.get(SESSION_KEY, ""))
        obj.user_id = int(user_id) if user_id.isdigit() else None  # type: ignore[attr-defined]
        return obj
