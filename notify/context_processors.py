from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from notify.selectors import unread_count


def inbox(request: HttpRequest) -> dict[str, Any]:
    """The bell's unread count in the top bar (lazily: one query, only when rendered)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"inbox_unread": SimpleLazyObject(lambda: unread_count(user))}
