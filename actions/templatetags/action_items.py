from __future__ import annotations

from typing import Any

from django import template

from actions import selectors
from actions.models import ActionItem, ItemStatus

register = template.Library()


@register.filter
def status_changeable_by(item: ActionItem, user: Any) -> bool:
    return selectors.can_set_status(user, item)


@register.simple_tag
def action_owner_choices() -> Any:
    return selectors.owner_choices()


@register.simple_tag
def action_status_choices() -> list[tuple[str, str]]:
    return list(ItemStatus.choices)
