from __future__ import annotations

from typing import Any

from django.urls import reverse

from console.notices import Notice


def overdue(user: Any) -> list[Notice]:
    """The person's own overdue action items, on the console home."""
    from actions.selectors import action_items_overdue_of

    count = action_items_overdue_of(user)
    if not count:
        return []
    text = "You have 1 overdue action item." if count == 1 else f"You have {count} overdue action items."
    return [Notice("warning", text, reverse("actions:mine"), "My action items")]
