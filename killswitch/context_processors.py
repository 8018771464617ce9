from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from killswitch.selectors import banner_states


def killswitch(request: HttpRequest) -> dict[str, Any]:
    """The kill-switch banner on every page a logged-in person sees (lazily: one query if rendered)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"killswitch_banner": SimpleLazyObject(banner_states)}
