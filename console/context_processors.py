from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from console.selectors import has_role
from console.selectors import liveness as read_liveness


def liveness(request: HttpRequest) -> dict[str, Any]:
    """The console's data age in the top bar of every page a person with a role sees (lazily: one
    query, and only when a template renders it)."""
    if not has_role(getattr(request, "user", None)):
        return {}
    return {"liveness": SimpleLazyObject(read_liveness)}
