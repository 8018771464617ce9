"""Audit every grant or revoke of a kill-switch permission, wherever it is made (admin, shell, code).

A signal is the one hook that sees them all; the record is written in the same transaction as the
change (a savepoint inside the caller's transaction), so a failed record undoes the change.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.db.models.signals import m2m_changed

from killswitch import audit
from killswitch.middleware import current_actor, current_ip
from killswitch.models import Action

APP = "killswitch"


def _names(perms: Any) -> list[str]:
    return sorted(f"{APP}.{p.codename}" for p in perms if p.content_type.app_label == APP)


def _write(action: Action, subject: str, names: list[str]) -> None:
    if not names:
        return
    actor = current_actor.get()
    with transaction.atomic():
        audit.record(
            action=action,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            reason=f"{subject}: {', '.join(names)}",
            ip=current_ip.get(),
        )


def _action(signal_action: str) -> Action | None:
    if signal_action == "post_add":
        return Action.PERMISSION_GRANTED
    if signal_action in ("post_remove", "pre_clear"):
        return Action.PERMISSION_REVOKED
    return None


def on_group_permissions(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **_: Any
) -> None:
    kind = _action(action)
    if kind is None:
        return
    if reverse:  # permission.group_set changed: instance is a Permission
        groups = Group.objects.filter(pk__in=pk_set) if pk_set else instance.group_set.all()
        for group in groups:
            _write(kind, f"group {group.name}", _names([instance]))
        return
    perms = Permission.objects.filter(pk__in=pk_set) if pk_set else instance.permissions.all()
    _write(kind, f"group {instance.name}", _names(perms.select_related("content_type")))


def on_user_permissions(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **_: Any
) -> None:
    kind = _action(action)
    if kind is None or reverse:
        return
    perms = Permission.objects.filter(pk__in=pk_set) if pk_set else instance.user_permissions.all()
    _write(kind, f"user {instance.get_username()}", _names(perms.select_related("content_type")))


def on_user_groups(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **_: Any) -> None:
    kind = _action(action)
    if kind is None:
        return
    if reverse:  # group.user_set changed: instance is a Group
        users = User.objects.filter(pk__in=pk_set) if pk_set else instance.user_set.all()
        names = _names(instance.permissions.select_related("content_type"))
        for user in users:
            _write(kind, f"user {user.get_username()} via group {instance.name}", names)
        return
    groups = Group.objects.filter(pk__in=pk_set) if pk_set else instance.groups.all()
    for group in groups:
        names = _names(group.permissions.select_related("content_type"))
        _write(kind, f"user {instance.get_username()} via group {group.name}", names)


def connect() -> None:
    m2m_changed.connect(on_group_permissions, sender=Group.permissions.through, dispatch_uid="ks-group-perms")
    m2m_changed.connect(
        on_user_permissions, sender=User.user_permissions.through, dispatch_uid="ks-user-perms"
    )
    m2m_changed.connect(on_user_groups, sender=User.groups.through, dispatch_uid="ks-user-groups")
