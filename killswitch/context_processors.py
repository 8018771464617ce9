from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from killswitch.selectors import banner_states

VIEW = "killswitch.view_targetstate"


def killswitch(request: HttpRequest) -> dict[str, Any]:
    """The kill-switch banner on every page of a person whose role may see the kill switch. Lazy: the
    permission check and the one query run only when a template renders the banner."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"killswitch_banner": SimpleLazyObject(lambda: banner_states() if user.has_perm(VIEW) else [])}
