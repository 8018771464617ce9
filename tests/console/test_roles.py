"""Roles are declared by each app and kept in step by `migrate`; the incident page's extension points."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from console.roles import ROLES, declared, sync_roles
from killswitch.models import Action, AuditRecord

pytestmark = pytest.mark.django_db


def perms_of(role: str) -> set[tuple[str, str]]:
    return set(Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename"))


def test_each_role_holds_exactly_what_the_apps_declare():
    wanted = declared()
    for role in ROLES:
        assert perms_of(role) == wanted[role], role
    # Every app that has permissions to give declares them on its AppConfig.
    declaring = {c.label for c in apps.get_app_configs() if getattr(c, "role_permissions", None)}
    assert {label for role in ROLES for label, _ in wanted[role]} == declaring >= {"incidents", "killswitch"}
    assert ("killswitch", "approve_resume") in wanted["lead"]
    assert not any(label == "auth" for role in ROLES for label, _ in wanted[role]), (
        "users are superusers' job"
    )


def test_migrate_puts_back_a_removed_permission_and_removes_a_foreign_one():
    lead = Group.objects.get(name="lead")
    lead.permissions.remove(Permission.objects.get(codename="approve_resume"))
    lead.permissions.add(Permission.objects.get(codename="change_user"))
    viewer_extra = Permission.objects.get(codename="activate_killswitch")
    Group.objects.get(name="viewer").permissions.add(viewer_extra)
    counts = sync_roles()
    assert counts == {"granted": 1, "revoked": 2}
    assert ("killswitch", "approve_resume") in perms_of("lead")
    assert ("auth", "change_user") not in perms_of("lead")
    assert ("killswitch", "activate_killswitch") not in perms_of("viewer")
    assert sync_roles() == {"granted": 0, "revoked": 0}


def test_kill_switch_powers_granted_and_revoked_by_the_sync_are_audited():
    Group.objects.get(name="lead").permissions.remove(Permission.objects.get(codename="approve_resume"))
    before = AuditRecord.objects.count()
    sync_roles()
    granted = AuditRecord.objects.filter(seq__gt=before, action=Action.PERMISSION_GRANTED).get()
    assert granted.reason == "group lead: killswitch.approve_resume" and granted.actor_name == "system"


def test_other_groups_are_left_alone():
    team = Group.objects.create(name="night shift")
    team.permissions.add(Permission.objects.get(codename="view_incident"))
    call_command("migrate", verbosity=0)  # post_migrate runs the sync
    assert list(team.permissions.values_list("codename", flat=True)) == ["view_incident"]


def test_an_unknown_role_in_a_declaration_is_refused(monkeypatch):
    config = apps.get_app_config("incidents")
    monkeypatch.setattr(config, "role_permissions", {"intern": ["view_incident"]}, raising=False)
    with pytest.raises(ValueError, match="unknown role 'intern'"):
        declared()
