from __future__ import annotations

from typing import Any, cast

import factory

from actions.models import ActionItem, Origin
from tests.incidents.factories import declare, make_user


class ActionItemFactory(factory.django.DjangoModelFactory):
    """A stored item (no timeline row); tests of the services create through `action_item_create`."""

    class Meta:
        model = ActionItem

    incident = factory.LazyFunction(lambda: declare())
    origin = Origin.INCIDENT
    title = factory.Sequence(lambda n: f"Follow-up {n}")
    owner = factory.LazyFunction(lambda: make_user(role="responder"))
    created_by = factory.SelfAttribute("owner")


def action_item(**kwargs: Any) -> ActionItem:
    return cast(ActionItem, ActionItemFactory(**kwargs))
