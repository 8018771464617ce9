"""Create the roles (groups) and their model permissions. Later apps add theirs in their own migrations."""

from __future__ import annotations

from django.db import migrations

VIEW = ["view_incident", "view_timelineevent", "view_severitylevel", "view_incidenttype", "view_checklist"]
RESPONDER = [*VIEW, "add_incident", "act_on_incident"]
LEAD = [*RESPONDER, "change_incident", "override_prerecovery"]
ADMIN = [
    *LEAD,
    "add_severitylevel",
    "change_severitylevel",
    "add_incidenttype",
    "change_incidenttype",
    "add_checklist",
    "change_checklist",
]
ROLES = {"viewer": VIEW, "responder": RESPONDER, "lead": LEAD, "executive": VIEW, "admin": ADMIN}
AUTH_ADMIN = ["view_user", "add_user", "change_user", "view_group"]


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; make sure ours exist now.
    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = list(Permission.objects.filter(content_type__app_label="incidents", codename__in=codenames))
        if name == "admin":
            perms += list(Permission.objects.filter(content_type__app_label="auth", codename__in=AUTH_ADMIN))
        group.permissions.add(*perms)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, remove_roles)]
