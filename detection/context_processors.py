from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from detection.selectors import liveness as read_liveness


def liveness(request: HttpRequest) -> dict[str, Any]:
    """The console's data age in the top bar of every page a logged-in person sees (lazily: one query,
    and only when a template renders it)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"liveness": SimpleLazyObject(read_liveness)}
