"""Every permission-scoped read of post-mortems."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from postmortems import review
from postmortems.models import Draft, PostMortem, PostMortemRevision
from postmortems.review import ReviewStatus

ANY = [
    "postmortems.view_postmortem",
    "postmortems.change_postmortem",
    "postmortems.review_postmortem",
    "postmortems.approve_postmortem",
]


def postmortems_visible_to(user: Any) -> QuerySet[PostMortem]:
    """All with the role's view permission; else those the person writes, reviews or approves."""
    if not user.is_authenticated:
        return PostMortem.objects.none()
    return get_objects_for_user(
        user, ANY, klass=PostMortem, any_perm=True, accept_global_perms=True, with_superuser=True
    )


def postmortem_get_for_user(user: Any, pk: int) -> PostMortem:
    pm = (
        postmortems_visible_to(user)
        .select_related("incident__incident_type", "author", "approver")
        .filter(pk=pk)
        .first()
    )
    if pm is None:
        raise Http404("No such post-mortem.")
    return pm


def may_edit(user: Any, pm: PostMortem) -> bool:
    return user.has_perm("postmortems.change_postmortem") or user.has_perm(
        "postmortems.change_postmortem", pm
    )


def need_edit(user: Any, pm: PostMortem) -> None:
    if not may_edit(user, pm):
        raise PermissionDenied("Only the author, a lead or an admin edits this post-mortem.")


def may_assign(user: Any) -> bool:
    return bool(user.has_perm("postmortems.assign_postmortem"))


def may_publish(user: Any, pm: PostMortem) -> bool:
    return may_edit(user, pm) or pm.approver_id == user.pk


def overdue(qs: QuerySet[PostMortem], now: datetime | None = None) -> QuerySet[PostMortem]:
    return qs.filter(deadline__lt=now or timezone.now()).exclude(status=ReviewStatus.PUBLISHED)


def postmortem_list(
    user: Any, *, mine: bool = False, status: str = "", late: bool = False
) -> QuerySet[PostMortem]:
    qs = postmortems_visible_to(user).select_related("incident", "author", "approver")
    if mine:
        qs = qs.filter(Q(author=user) | Q(approver=user) | Q(pk__in=_reviewing(user)))
    if status in ReviewStatus.values:
        qs = qs.filter(status=status)
    if late:
        qs = overdue(qs)
    return qs.order_by("status", "deadline", "-pk")


def _reviewing(user: Any) -> list[int]:
    return list(
        get_objects_for_user(
            user, "postmortems.review_postmortem", klass=PostMortem, accept_global_perms=False
        ).values_list("pk", flat=True)
    )


def revision(pm: PostMortem, number: int | None = None) -> PostMortemRevision:
    found = PostMortemRevision.objects.filter(postmortem=pm, number=number or pm.current_revision).first()
    if found is None:
        raise Http404("No such revision.")
    return found


def draft_of(user: Any, pm: PostMortem) -> Draft | None:
    """The person's autosaved working copy, if any."""
    return Draft.objects.filter(postmortem=pm, user=user).first()


def reviewers(pm: PostMortem) -> list[Any]:
    return review.reviewers_of(pm)


def for_incident(incident_id: int) -> PostMortem | None:
    return PostMortem.objects.filter(incident_id=incident_id).select_related("author").first()


def require(condition: bool, what: str) -> None:
    if not condition:
        raise PermissionDenied(what)
