"""Kill-switch permissions for the roles, and an append-only audit table enforced by the database."""

from __future__ import annotations

from django.db import migrations

ROLES = {
    "viewer": ["view_targetstate", "view_resumerequest"],
    "executive": ["view_targetstate", "view_resumerequest"],
    "responder": ["view_targetstate", "view_resumerequest", "activate_killswitch"],
    "lead": [
        "view_targetstate",
        "view_resumerequest",
        "activate_killswitch",
        "request_resume",
        "approve_resume",
        "view_auditrecord",
        "export_auditrecord",
    ],
    "admin": [
        "view_targetstate",
        "view_resumerequest",
        "activate_killswitch",
        "request_resume",
        "approve_resume",
        "view_auditrecord",
        "export_auditrecord",
    ],
}

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION killswitch_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'kill-switch audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER killswitch_audit_append_only BEFORE UPDATE OR DELETE ON killswitch_auditrecord
    FOR EACH ROW EXECUTE FUNCTION killswitch_audit_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS killswitch_audit_append_only ON killswitch_auditrecord;
DROP FUNCTION IF EXISTS killswitch_audit_append_only();
"""
SQLITE_UP = [
    """CREATE TRIGGER killswitch_audit_no_update BEFORE UPDATE ON killswitch_auditrecord
       BEGIN SELECT RAISE(ABORT, 'kill-switch audit records are append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER killswitch_audit_no_delete BEFORE DELETE ON killswitch_auditrecord
       BEGIN SELECT RAISE(ABORT, 'kill-switch audit records are append-only: DELETE refused'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS killswitch_audit_no_update",
    "DROP TRIGGER IF EXISTS killswitch_audit_no_delete",
]


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="killswitch", codename__in=codenames)
        )


def append_only(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": [POSTGRES_UP], "sqlite": SQLITE_UP}.get(vendor, [])
    for sql in statements:
        schema_editor.execute(sql, params=None)


def allow_changes(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in {"postgresql": [POSTGRES_DOWN], "sqlite": SQLITE_DOWN}.get(vendor, []):
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("killswitch", "0001_initial"), ("incidents", "0002_roles")]
    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(append_only, allow_changes),
    ]
