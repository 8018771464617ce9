"""Every write to on-call data: rotations with their members, overrides, calendar feeds."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, time
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from console.errors import DomainError
from oncall.models import CalendarFeed, Override, Rotation, RotationMember

ROLE_PERMISSION = "incidents.view_incident"  # a member must hold a role of the console


class OnCallRefused(DomainError):
    pass


def _check_members(members: list[User]) -> None:
    seen: set[int] = set()
    for user in members:
        if user.pk in seen:
            raise OnCallRefused(f"{user.get_username()} is listed twice.")
        seen.add(user.pk)
        if not user.is_active or not user.has_perm(ROLE_PERMISSION):
            raise OnCallRefused(f"{user.get_username()} cannot be on call (inactive, or no role).")


@transaction.atomic
def rotation_save(
    *,
    rotation: Rotation | None,
    name: str,
    duty: str,
    time_zone: str,
    effective_from: date,
    handoff_time: time,
    handoff_weekday: int | None,
    shift_hours: int,
    members: list[User],
    enabled: bool = True,
) -> Rotation:
    """Create or change a rotation and set its members, in order."""
    _check_members(members)
    rotation = rotation or Rotation()
    rotation.name, rotation.duty, rotation.time_zone = name.strip(), duty, time_zone
    rotation.effective_from, rotation.handoff_time, rotation.handoff_weekday = (
        effective_from,
        handoff_time,
        handoff_weekday,
    )
    rotation.shift_hours, rotation.enabled = shift_hours, enabled
    rotation.full_clean()
    rotation.save()
    RotationMember.objects.filter(rotation=rotation).delete()
    RotationMember.objects.bulk_create(
        RotationMember(rotation=rotation, user=user, position=i) for i, user in enumerate(members)
    )
    return rotation


@transaction.atomic
def override_create(
    *,
    rotation: Rotation,
    user: User,
    starts_at: datetime,
    ends_at: datetime,
    actor: User,
    replaces: User | None = None,
    reason: str = "",
) -> Override:
    """`user` covers `rotation` over [starts_at, ends_at) (only `replaces`'s shifts, if given)."""
    if ends_at <= starts_at:
        raise OnCallRefused("An override must end after it starts.")
    if ends_at <= timezone.now():
        raise OnCallRefused("That override would be over already.")
    _check_members([user])
    if replaces is not None and replaces.pk == user.pk:
        raise OnCallRefused("Someone cannot cover their own shift.")
    return Override.objects.create(
        rotation=rotation,
        user=user,
        replaces=replaces,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason.strip()[:200],
        created_by=actor,
    )


@transaction.atomic
def override_delete(*, override: Override) -> None:
    override.delete()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def calendar_feed_create(*, user: User, rotation: Rotation | None = None) -> tuple[CalendarFeed, str]:
    """A new secret feed; the token is returned once and only its digest is kept."""
    token = secrets.token_urlsafe(24)
    feed = CalendarFeed.objects.create(user=user, rotation=rotation, token_digest=_digest(token))
    return feed, token


def calendar_feed_for_token(token: str) -> CalendarFeed | None:
    return (
        CalendarFeed.objects.filter(token_digest=_digest(token), revoked_at__isnull=True)
        .select_related("user", "rotation")
        .first()
    )


@transaction.atomic
def calendar_feed_revoke(*, feed: CalendarFeed, actor: Any) -> None:
    if feed.user_id != actor.pk:
        raise OnCallRefused("Only its owner can revoke a calendar feed.")
    CalendarFeed.objects.filter(pk=feed.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
