from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from console.selectors import has_role
from console.selectors import liveness as read_liveness


def liveness(request: HttpRequest) -> dict[str, Any]:
    """The console's data age in the top bar of every page a person with a role sees. Lazy: the role
    check and the one query run only when a template renders it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"liveness": SimpleLazyObject(lambda: read_liveness() if has_role(user) else None)}


def notices(request: HttpRequest) -> dict[str, Any]:
    """Warnings from other apps for the console home and the status board (lazily, when rendered)."""
    from console.notices import notices_for

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"console_notices": SimpleLazyObject(lambda: notices_for(user) if has_role(user) else [])}
