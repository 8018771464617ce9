"""Every permission-scoped read of action items."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404
from django.utils import timezone

from actions.models import ACTIVE_STATUSES, ActionItem
from console.roles import ROLES
from incidents.models import Incident
from incidents.selectors import incidents_visible_to

VIEW, ADD, CHANGE = "actions.view_actionitem", "actions.add_actionitem", "actions.change_actionitem"


def _base() -> QuerySet[ActionItem]:
    return ActionItem.objects.select_related("owner", "incident")


def _active_first(qs: QuerySet[ActionItem]) -> QuerySet[ActionItem]:
    """Still to be done first (soonest due first, undated last), then the finished, newest first."""
    rank = Case(
        When(status__in=ACTIVE_STATUSES, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return qs.annotate(rank=rank).order_by("rank", "due", "-completed_at", "pk")


def action_items_for_incident(incident: Incident) -> list[ActionItem]:
    return list(_active_first(_base().filter(incident=incident)))


def action_items_of(user: Any) -> list[ActionItem]:
    """The user's own items, across every incident, post-mortem and drill: open ones first."""
    if not user.is_authenticated:
        return []
    return list(_active_first(_base().filter(owner=user)))


def action_items_visible_to(user: Any) -> QuerySet[ActionItem]:
    """Items on incidents the user may view (with the role to read action items), and their own."""
    if not user.is_authenticated:
        return ActionItem.objects.none()
    own = Q(owner=user)
    if user.has_perm(VIEW):
        return _base().filter(own | Q(incident__in=incidents_visible_to(user)))
    return _base().filter(own)


def action_items_overdue_of(user: Any) -> int:
    if not user.is_authenticated:
        return 0
    return ActionItem.objects.filter(
        owner=user, status__in=ACTIVE_STATUSES, due__lt=timezone.localdate()
    ).count()


def action_item_get_for_user(user: Any, pk: int) -> ActionItem:
    item = action_items_visible_to(user).filter(pk=pk).first()
    if item is None:
        raise Http404("No such action item.")
    return item


def can_edit(user: Any, item: ActionItem | None = None) -> bool:
    return bool(user.has_perm(CHANGE))


def can_set_status(user: Any, item: ActionItem) -> bool:
    """Editors may; the owner may always move their own item along."""
    return can_edit(user, item) or (item.owner_id is not None and item.owner_id == user.pk)


def require_status_right(user: Any, item: ActionItem) -> None:
    if not can_set_status(user, item):
        raise PermissionDenied("Only the owner or a responder may change this item's status.")


def owner_choices() -> QuerySet[Any]:
    """Who may own an item: active users holding one of the console's roles."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=ROLES)
        .distinct()
        .order_by("username")
    )
