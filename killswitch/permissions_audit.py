"""Audit every grant or revoke of a kill-switch power, wherever it is made (admin, shell, code, a
management command): group and direct permissions and memberships (both directions of every
relation), the superuser and active flags, deleting a group or a user, and a password change or reset
(or a second factor enrolled or removed) of a user who holds an acting power (halt, request, approve).

auth's models are not ours, so signals are the one hook that sees every path. Each record is written
in the same transaction as the change (inside the caller's transaction, as a savepoint), so a failed
record undoes the change. Two paths need more than that:

- `User.save()` is not atomic by itself. Inside `transaction.atomic()` (Django admin, services) the
  record commits with the change. Outside one (`createsuperuser`, `changepassword`, a shell), the
  record is committed *first*, just before the save: the audit never misses a grant, and if the save
  then fails, the powers reconcile records the difference as soon as it runs.
- `queryset.update()` and raw SQL send no signal. `powers_reconcile()` (beat, every
  KILLSWITCH_POWERS_RECONCILE_SECONDS) compares who holds which power now with `PowerHolding`, the
  state at the last audited change, and records each difference as an external change. Every hook
  does the same for the users it touches before recording its own change, so a change made outside
  the hooks is never credited to the next person who edits that account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django_otp.plugins.otp_totp.models import TOTPDevice

from killswitch import audit
from killswitch.middleware import current_actor, current_ip
from killswitch.models import Action, AuditHead, PowerHolding

APP = "killswitch"
# The powers that change trading; a password change of someone holding one is audited.
ACTING = frozenset(f"{APP}.{c}" for c in ("activate_killswitch", "request_resume", "approve_resume"))
# What a pre_* signal learnt, for its post_* partner (same thread, same transaction).
_AFFECTED = "_killswitch_affected_users"


def _names(perms: Any) -> list[str]:
    return sorted(f"{APP}.{p.codename}" for p in perms if p.content_type.app_label == APP)


def _all_powers() -> set[str]:
    codes = Permission.objects.filter(content_type__app_label=APP).values_list("codename", flat=True)
    return {f"{APP}.{c}" for c in codes}


@contextmanager
def _in_transaction() -> Any:
    """The caller's transaction (as a savepoint) when there is one; otherwise a transaction of its own,
    committed before the change it records (see the module docstring)."""
    with transaction.atomic():
        yield


def _write(action: Action, subject: str, names: Iterable[str], **kwargs: Any) -> None:
    names = sorted(names)
    if not names:
        return
    actor = current_actor.get()
    with _in_transaction():
        audit.record(
            action=action,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            reason=f"{subject}: {', '.join(names)}",
            ip=current_ip.get(),
            **kwargs,
        )


# --- Who holds what ----------------------------------------------------------------------------------


def held(
    user_ids: Iterable[int],
    *,
    flags: dict[int, tuple[bool, bool]] | None = None,
    without_group: int | None = None,
) -> dict[int, set[str]]:
    """{user id: kill-switch permissions held} as the database says now. `flags` overrides
    (is_superuser, is_active) of a user about to be saved; `without_group` leaves out a group about
    to be deleted. An inactive user holds nothing (Django's backends grant them nothing)."""
    ids = set(user_ids)
    if not ids:
        return {}
    rows = {
        pk: (su, active)
        for pk, su, active in User.objects.filter(pk__in=ids).values_list("pk", "is_superuser", "is_active")
    }
    rows |= {pk: f for pk, f in (flags or {}).items() if pk in ids}
    via: dict[int, set[str]] = defaultdict(set)
    through_groups = Permission.objects.filter(content_type__app_label=APP, group__user__in=ids)
    if without_group is not None:
        through_groups = through_groups.exclude(group=without_group)
    for uid, code in through_groups.values_list("group__user", "codename"):
        via[uid].add(f"{APP}.{code}")
    direct = Permission.objects.filter(content_type__app_label=APP, user__in=ids)
    for uid, code in direct.values_list("user", "codename"):
        via[uid].add(f"{APP}.{code}")
    everything = _all_powers() if any(su for su, _ in rows.values()) else set()
    return {
        uid: (set() if not active else set(everything) if su else via[uid])
        for uid, (su, active) in rows.items()
    }


def _snapshot(user_ids: Iterable[int]) -> dict[int, PowerHolding]:
    """The last audited state of these users, locked until the change's transaction ends."""
    rows = PowerHolding.objects.select_for_update().filter(user_id__in=set(user_ids)).order_by("user_id")
    return {row.user_id: row for row in rows}


def _store(user_id: int, username: str, powers: set[str]) -> None:
    PowerHolding.objects.update_or_create(
        user_id=user_id, defaults={"username": username, "powers": sorted(powers)}
    )


def _usernames(user_ids: Iterable[int]) -> dict[int, str]:
    return dict(User.objects.filter(pk__in=set(user_ids)).values_list("pk", "username"))


def _catch_up(user_ids: Iterable[int]) -> int:
    """Record, as external changes, every difference between these users' powers now and their last
    audited state; then remember the present. Returns how many users differed."""
    ids = set(user_ids)
    if not ids:
        return 0
    with _in_transaction():
        snapshot = _snapshot(ids)
        now = held(ids)
        names = _usernames(ids)
        changed = 0
        for uid in sorted(ids | snapshot.keys()):
            before = set(snapshot[uid].powers) if uid in snapshot else set()
            after = now.get(uid, set())
            if before == after:
                continue
            changed += 1
            name = names.get(uid) or (snapshot[uid].username if uid in snapshot else f"#{uid}")
            parts = [
                f"{verb} outside the console: {', '.join(sorted(powers))}"
                for verb, powers in (("gained", after - before), ("lost", before - after))
                if powers
            ]
            actor = current_actor.get()
            audit.record(
                action=Action.EXTERNAL_PERMISSION_CHANGE,
                actor=actor if getattr(actor, "is_authenticated", False) else None,
                reason=f"user {name} " + "; ".join(parts),
                before={"powers": sorted(before)},
                after={"powers": sorted(after)},
                ip=current_ip.get(),
            )
            if uid in now:
                _store(uid, name, after)
            else:
                PowerHolding.objects.filter(user_id=uid).delete()
    return changed


def _absorb(user_ids: Iterable[int]) -> None:
    """Remember these users' powers now: the audited change just made is the reason for any difference."""
    ids = set(user_ids)
    if not ids:
        return
    names = _usernames(ids)
    now = held(ids)
    snapshot = _snapshot(ids)
    for uid, powers in now.items():
        if (set(snapshot[uid].powers) if uid in snapshot else set()) != powers:
            _store(uid, names[uid], powers)


def powers_reconcile() -> int:
    """Compare every user's kill-switch powers with the last audited state; record each difference as
    an external change (one audit record per user). Idempotent. Returns how many users differed.

    1. Lock the audit chain's head: changes being recorded right now finish first, so their state
       and their snapshot are read together.
    2. Compare everyone who holds a power now or held one at the last audited change.
    """
    with transaction.atomic():
        AuditHead.objects.select_for_update().get_or_create(pk=1)
        holders = set(PowerHolding.objects.values_list("user_id", flat=True))
        holders |= set(User.objects.filter(is_superuser=True, is_active=True).values_list("pk", flat=True))
        holders |= set(
            Permission.objects.filter(content_type__app_label=APP, group__user__isnull=False).values_list(
                "group__user", flat=True
            )
        )
        holders |= set(
            Permission.objects.filter(content_type__app_label=APP, user__isnull=False).values_list(
                "user", flat=True
            )
        )
        return _catch_up(holders)


# --- Hooks: memberships and permissions (m2m) -----------------------------------------------------


def _action(signal_action: str) -> Action | None:
    if signal_action == "post_add":
        return Action.PERMISSION_GRANTED
    if signal_action in ("post_remove", "pre_clear"):
        return Action.PERMISSION_REVOKED
    return None


def _members(group_ids: Iterable[int]) -> set[int]:
    return set(User.objects.filter(groups__in=set(group_ids)).values_list("pk", flat=True))


def _around(instance: Any, action: str, affected: Any) -> None:
    """Before an m2m change: catch up on the users it touches. After it: remember their new state."""
    if action in ("pre_add", "pre_remove", "pre_clear"):
        users = affected()
        setattr(instance, _AFFECTED, users)
        _catch_up(users)
    elif action in ("post_add", "post_remove", "post_clear"):
        _absorb(getattr(instance, _AFFECTED, None) or affected())


def on_group_permissions(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **_: Any
) -> None:
    if reverse:  # permission.group_set changed: instance is a Permission
        group_ids = pk_set if pk_set else set(instance.group_set.values_list("pk", flat=True))
        _around(instance, action, lambda: _members(group_ids))
        kind = _action(action)
        if kind is not None:
            for group in Group.objects.filter(pk__in=group_ids).order_by("name"):
                _write(kind, f"group {group.name}", _names([instance]))
        return
    _around(instance, action, lambda: _members([instance.pk]))
    kind = _action(action)
    if kind is not None:
        perms = Permission.objects.filter(pk__in=pk_set) if pk_set else instance.permissions.all()
        _write(kind, f"group {instance.name}", _names(perms.select_related("content_type")))


def on_user_permissions(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **_: Any
) -> None:
    if reverse:  # permission.user_set changed: instance is a Permission
        user_ids = pk_set if pk_set else set(instance.user_set.values_list("pk", flat=True))
        _around(instance, action, lambda: set(user_ids))
        kind = _action(action)
        if kind is not None:
            for user in User.objects.filter(pk__in=user_ids).order_by("username"):
                _write(kind, f"user {user.get_username()}", _names([instance]))
        return
    _around(instance, action, lambda: {instance.pk})
    kind = _action(action)
    if kind is not None:
        perms = Permission.objects.filter(pk__in=pk_set) if pk_set else instance.user_permissions.all()
        _write(kind, f"user {instance.get_username()}", _names(perms.select_related("content_type")))


def on_user_groups(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **_: Any) -> None:
    if reverse:  # group.user_set changed: instance is a Group
        user_ids = pk_set if pk_set else set(instance.user_set.values_list("pk", flat=True))
        _around(instance, action, lambda: set(user_ids))
        kind = _action(action)
        if kind is not None:
            names = _names(instance.permissions.select_related("content_type"))
            for user in User.objects.filter(pk__in=user_ids).order_by("username"):
                _write(kind, f"user {user.get_username()} via group {instance.name}", names)
        return
    _around(instance, action, lambda: {instance.pk})
    kind = _action(action)
    if kind is not None:
        groups = Group.objects.filter(pk__in=pk_set) if pk_set else instance.groups.all()
        for group in groups.order_by("name"):
            names = _names(group.permissions.select_related("content_type"))
            _write(kind, f"user {instance.get_username()} via group {group.name}", names)


# --- Hooks: the user's own flags and password, deletions ----------------------------------------------

_WATCHED = {"is_superuser", "is_active", "password"}


def on_user_pre_save(sender: Any, instance: User, raw: bool, update_fields: Any, **_: Any) -> None:
    """Superuser and active flags, and the password of a power holder. Outside a transaction the
    records are committed before the save (see the module docstring)."""
    if raw or (update_fields is not None and not _WATCHED & set(update_fields)):
        return  # e.g. a login's last_login: nothing to look at
    name = instance.get_username()
    old = (
        User.objects.filter(pk=instance.pk).values("is_superuser", "is_active", "password").first()
        if instance.pk
        else None
    )
    if old is None:  # a new user: groups and permissions come later (m2m); only the flags matter
        if instance.is_superuser and instance.is_active:
            _write(Action.PERMISSION_GRANTED, f"user {name} created as superuser", _all_powers())
        return
    with _in_transaction():
        _catch_up([instance.pk])
        before = held([instance.pk])[instance.pk]
        after = held([instance.pk], flags={instance.pk: (instance.is_superuser, instance.is_active)})[
            instance.pk
        ]
        changes = []
        if instance.is_superuser != old["is_superuser"]:
            changes.append("superuser flag set" if instance.is_superuser else "superuser flag cleared")
        if instance.is_active != old["is_active"]:
            changes.append("reactivated" if instance.is_active else "deactivated")
        what = f"user {name} {', '.join(changes)}"
        _write(
            Action.PERMISSION_GRANTED,
            what,
            after - before,
            before={"powers": sorted(before)},
            after={"powers": sorted(after)},
        )
        _write(
            Action.PERMISSION_REVOKED,
            what,
            before - after,
            before={"powers": sorted(before)},
            after={"powers": sorted(after)},
        )
        if instance.password != old["password"] and (before | after) & ACTING:
            _write_credentials(name, (before | after) & ACTING)
        if before != after:
            _store(instance.pk, name, after)


def _write_credentials(name: str, powers: set[str]) -> None:
    actor = current_actor.get()
    with _in_transaction():
        audit.record(
            action=Action.CREDENTIALS_CHANGED,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            reason=f"user {name} password changed (holds {', '.join(sorted(powers))})",
            ip=current_ip.get(),
        )


def on_device_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A TOTP device of a power holder confirmed or deleted (by its owner, or by a superuser in admin):
    the approval's second factor changed, so it is recorded like a password change."""
    if kwargs.get("raw") or not instance.confirmed:
        return
    powers = held([instance.user_id]).get(instance.user_id, set()) & ACTING
    if not powers:
        return
    if "created" not in kwargs:
        what = "removed"
    elif kwargs["created"] or "confirmed" in (kwargs.get("update_fields") or ()):
        what = "enrolled"
    else:
        return  # a code used or refused moves the device's counters: not a change of credentials
    name = User.objects.filter(pk=instance.user_id).values_list("username", flat=True).first()
    actor = current_actor.get()
    with _in_transaction():
        audit.record(
            action=Action.CREDENTIALS_CHANGED,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            reason=f"user {name} second factor {what} (holds {', '.join(sorted(powers))})",
            ip=current_ip.get(),
        )


def on_user_post_save(sender: Any, instance: User, created: bool, raw: bool, **_: Any) -> None:
    if created and not raw:
        with _in_transaction():
            _absorb([instance.pk])


def on_user_pre_delete(sender: Any, instance: User, **_: Any) -> None:
    _catch_up([instance.pk])
    before = held([instance.pk]).get(instance.pk, set())
    _write(
        Action.PERMISSION_REVOKED,
        f"user {instance.get_username()} deleted",
        before,
        before={"powers": sorted(before)},
        after={"powers": []},
    )


def on_user_post_delete(sender: Any, instance: User, **_: Any) -> None:
    PowerHolding.objects.filter(user_id=instance.pk).delete()


def on_group_pre_delete(sender: Any, instance: Group, **_: Any) -> None:
    members = _members([instance.pk])
    setattr(instance, _AFFECTED, members)
    _catch_up(members)
    before, after = held(members), held(members, without_group=instance.pk)
    for uid, name in sorted(_usernames(members).items(), key=lambda item: item[1]):
        _write(
            Action.PERMISSION_REVOKED,
            f"user {name} via deleted group {instance.name}",
            before[uid] - after[uid],
        )
    _write(
        Action.PERMISSION_REVOKED,
        f"group {instance.name} deleted",
        _names(instance.permissions.select_related("content_type")),
    )


def on_group_post_delete(sender: Any, instance: Group, **_: Any) -> None:
    _absorb(getattr(instance, _AFFECTED, set()))


def connect() -> None:
    m2m_changed.connect(on_group_permissions, sender=Group.permissions.through, dispatch_uid="ks-group-perms")
    m2m_changed.connect(
        on_user_permissions, sender=User.user_permissions.through, dispatch_uid="ks-user-perms"
    )
    m2m_changed.connect(on_user_groups, sender=User.groups.through, dispatch_uid="ks-user-groups")
    pre_save.connect(on_user_pre_save, sender=User, dispatch_uid="ks-user-flags")
    post_save.connect(on_user_post_save, sender=User, dispatch_uid="ks-user-created")
    pre_delete.connect(on_user_pre_delete, sender=User, dispatch_uid="ks-user-deleted")
    post_delete.connect(on_user_post_delete, sender=User, dispatch_uid="ks-user-deleted-after")
    pre_delete.connect(on_group_pre_delete, sender=Group, dispatch_uid="ks-group-deleted")
    post_delete.connect(on_group_post_delete, sender=Group, dispatch_uid="ks-group-deleted-after")
    post_save.connect(on_device_changed, sender=TOTPDevice, dispatch_uid="ks-totp-saved")
    post_delete.connect(on_device_changed, sender=TOTPDevice, dispatch_uid="ks-totp-deleted")
