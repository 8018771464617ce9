"""Roles are Django groups. Each app declares what its roles may do (`role_permissions` on its
AppConfig, codenames of its own models' permissions); `sync_roles` makes the five groups hold exactly
what the installed apps declare. It runs after every `migrate` (and after a test database flush), so
a new app brings its permissions with it and nothing else needs editing.

Roles are code, not data: a permission an admin added to one of these groups by hand is removed on
the next migrate (and audited, where it is a kill-switch power). Other groups are left alone.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db import transaction

VIEWER, RESPONDER, LEAD, EXECUTIVE, ADMIN = "viewer", "responder", "lead", "executive", "admin"
ROLES = (VIEWER, RESPONDER, LEAD, EXECUTIVE, ADMIN)


def role_of(user: object) -> str:
    """The highest role a user holds, for display."""
    names = {g.name for g in user.groups.all()}  # type: ignore[attr-defined]
    for role in (ADMIN, LEAD, RESPONDER, EXECUTIVE, VIEWER):
        if role in names:
            return role
    return "superuser" if getattr(user, "is_superuser", False) else "no role"


def declared(apps: Any = global_apps) -> dict[str, set[tuple[str, str]]]:
    """{role: {(app_label, codename)}} from every installed app's `role_permissions`."""
    wanted: dict[str, set[tuple[str, str]]] = {role: set() for role in ROLES}
    for config in global_apps.get_app_configs():
        for role, codenames in getattr(config, "role_permissions", {}).items():
            if role not in wanted:
                raise ValueError(f"{config.label}.role_permissions names an unknown role {role!r}")
            wanted[role] |= {(config.label, codename) for codename in codenames}
    return wanted


def sync_roles(apps: Any = global_apps, *, using: str = "default") -> dict[str, int]:
    """Create the five groups and give each exactly its declared permissions. Idempotent.
    Returns how many permissions were granted and revoked."""
    from django.contrib.auth.management import create_permissions

    # Permissions are created per app after migrate; make sure every app's exist before granting them.
    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    by_key = {
        (app_label, codename): pk
        for pk, app_label, codename in Permission.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    counts = {"granted": 0, "revoked": 0}
    with transaction.atomic(using=using):
        for role, keys in declared(apps).items():
            missing = sorted(k for k in keys if k not in by_key)
            if missing:
                raise ValueError(f"role {role}: no such permissions {missing}")
            group, _ = Group.objects.using(using).get_or_create(name=role)
            want = {by_key[k] for k in keys}
            have = set(group.permissions.values_list("pk", flat=True))
            if want - have:
                group.permissions.add(*sorted(want - have))
            if have - want:
                group.permissions.remove(*sorted(have - want))
            counts["granted"] += len(want - have)
            counts["revoked"] += len(have - want)
    return counts


def on_post_migrate(sender: Any, using: str = "default", apps: Any = global_apps, **_: Any) -> None:
    # Historical app registries (during a migration plan) lack the current models: use the real one.
    sync_roles(global_apps, using=using)
