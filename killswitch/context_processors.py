from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from killswitch.selectors import banner_states

VIEW = "killswitch.view_targetstate"


def killswitch(request: HttpRequest) -> dict[str, Any]:
    """The kill-switch banner on every page of a person whose role may see the kill switch (lazily:
    one query, and only if rendered)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm(VIEW):
        return {}
    return {"killswitch_banner": SimpleLazyObject(banner_states)}
