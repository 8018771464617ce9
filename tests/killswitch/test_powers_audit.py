"""Every change that grants or revokes a kill-switch power is audited in the same transaction as the
change, whichever path makes it (ORM, Django admin, a deletion, a password reset); only superusers
manage users and groups; what no hook can see (queryset.update, raw SQL) the powers reconcile finds."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection, transaction
from django.urls import reverse

from console.models import Heartbeat
from killswitch import audit, permissions_audit
from killswitch.middleware import current_actor
from killswitch.models import Action, AuditRecord
from tests.incidents.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def all_powers() -> str:
    names = Permission.objects.filter(content_type__app_label="killswitch").values_list("codename", flat=True)
    return ", ".join(sorted(f"killswitch.{c}" for c in names))


def new_records(since: int) -> list[tuple[str, str]]:
    return [(r.action, r.reason) for r in AuditRecord.objects.filter(seq__gt=since).order_by("seq")]


def head() -> int:
    last = AuditRecord.objects.order_by("-seq").first()
    return last.seq if last else 0


@pytest.fixture
def acting_as(admin_user: Any) -> Any:
    token = current_actor.set(admin_user)
    yield admin_user
    current_actor.reset(token)


class TestSuperuserFlag:
    def test_set_through_the_orm_in_a_transaction_is_recorded_in_it(self, viewer):
        n = head()
        with transaction.atomic():
            viewer.is_superuser = True
            viewer.save()
        [(action, reason)] = new_records(n)
        assert action == Action.PERMISSION_GRANTED
        assert reason.startswith("user viewer superuser flag set: ") and "killswitch.approve_resume" in reason
        assert "killswitch.view_targetstate" not in reason  # already held through the viewer role
        assert audit.verify()[1] == []

    def test_a_rolled_back_change_leaves_no_record(self, viewer):
        n = head()
        with pytest.raises(RuntimeError), transaction.atomic():
            viewer.is_superuser = True
            viewer.save()
            raise RuntimeError("the caller gives up")
        assert new_records(n) == []

    @pytest.mark.django_db(transaction=True)
    def test_set_through_the_orm_outside_a_transaction_is_recorded_first(self):
        """Model.save() of auth.User is not atomic: the record is committed just before the save."""
        user = make_user(username="plain")
        n = head()
        user.is_superuser = True
        user.save()
        [(action, reason)] = new_records(n)
        assert action == Action.PERMISSION_GRANTED
        assert reason == f"user plain superuser flag set: {all_powers()}"

    def test_cleared_is_recorded(self):
        boss = User.objects.create_superuser("boss", password=PASSWORD)
        n = head()
        boss.is_superuser = False
        boss.save(update_fields=["is_superuser"])
        assert new_records(n) == [
            (Action.PERMISSION_REVOKED, f"user boss superuser flag cleared: {all_powers()}")
        ]

    def test_creating_a_superuser_is_recorded(self):
        n = head()
        User.objects.create_superuser("root2", password=PASSWORD)
        assert new_records(n) == [
            (Action.PERMISSION_GRANTED, f"user root2 created as superuser: {all_powers()}")
        ]

    def test_saving_anything_else_records_nothing(self, lead):
        n = head()
        lead.first_name = "Lea"
        lead.save()
        lead.save(update_fields=["last_login"])
        assert new_records(n) == []


class TestActive:
    def test_deactivating_and_reactivating_a_power_holder_is_recorded(self, lead):
        n = head()
        lead.is_active = False
        lead.save()
        lead.is_active = True
        lead.save()
        records = new_records(n)
        assert [a for a, _ in records] == [Action.PERMISSION_REVOKED, Action.PERMISSION_GRANTED]
        assert (
            records[0][1].startswith("user lead deactivated: ")
            and "killswitch.approve_resume" in records[0][1]
        )
        assert records[1][1].startswith("user lead reactivated: ")

    def test_deactivating_someone_without_a_power_records_nothing(self, norole):
        n = head()
        norole.is_active = False
        norole.save()
        assert new_records(n) == []


class TestPassword:
    def test_a_password_change_of_a_power_holder_is_recorded(self, lead, responder):
        n = head()
        lead.set_password("another-long-password-1")
        lead.save()
        responder.set_password("another-long-password-2")
        responder.save(update_fields=["password"])
        records = new_records(n)
        assert [a for a, _ in records] == [Action.CREDENTIALS_CHANGED, Action.CREDENTIALS_CHANGED]
        assert records[0][1].startswith("user lead password changed (holds killswitch.activate_killswitch")
        assert records[1][1] == "user responder password changed (holds killswitch.activate_killswitch)"

    def test_a_password_change_without_a_power_records_nothing(self, viewer):
        n = head()
        viewer.set_password("another-long-password-3")
        viewer.save()
        assert new_records(n) == []


class TestMemberships:
    """Both directions of every relation: user.groups, group.user_set, user.user_permissions,
    permission.user_set, group.permissions, permission.group_set (add, remove, clear)."""

    def test_user_groups_from_either_side(self, acting_as):
        user = make_user(username="u1")
        lead = Group.objects.get(name="lead")
        n = head()
        lead.user_set.add(user)
        lead.user_set.remove(user)
        user.groups.add(lead)
        lead.user_set.clear()
        records = new_records(n)
        assert [a for a, _ in records] == [
            Action.PERMISSION_GRANTED,
            Action.PERMISSION_REVOKED,
            Action.PERMISSION_GRANTED,
            Action.PERMISSION_REVOKED,
        ]
        assert all(r.startswith("user u1 via group lead: ") for _, r in records)
        assert AuditRecord.objects.filter(seq__gt=n).last().actor_name == "admin"

    def test_direct_permissions_from_either_side(self):
        user = make_user(username="u2")
        approve = Permission.objects.get(codename="approve_resume")
        n = head()
        approve.user_set.add(user)
        approve.user_set.remove(user)
        user.user_permissions.add(approve)
        user.user_permissions.clear()
        assert new_records(n) == [
            (Action.PERMISSION_GRANTED, "user u2: killswitch.approve_resume"),
            (Action.PERMISSION_REVOKED, "user u2: killswitch.approve_resume"),
            (Action.PERMISSION_GRANTED, "user u2: killswitch.approve_resume"),
            (Action.PERMISSION_REVOKED, "user u2: killswitch.approve_resume"),
        ]

    def test_group_permissions_from_either_side(self):
        group = Group.objects.create(name="night shift")
        approve = Permission.objects.get(codename="approve_resume")
        n = head()
        approve.group_set.add(group)
        group.permissions.remove(approve)
        assert new_records(n) == [
            (Action.PERMISSION_GRANTED, "group night shift: killswitch.approve_resume"),
            (Action.PERMISSION_REVOKED, "group night shift: killswitch.approve_resume"),
        ]


class TestDeletion:
    def test_deleting_a_group_that_holds_a_power_is_recorded_for_it_and_each_member(self):
        group = Group.objects.create(name="night shift")
        group.permissions.add(Permission.objects.get(codename="approve_resume"))
        make_user(username="m1").groups.add(group)
        n = head()
        group.delete()
        assert new_records(n) == [
            (Action.PERMISSION_REVOKED, "user m1 via deleted group night shift: killswitch.approve_resume"),
            (Action.PERMISSION_REVOKED, "group night shift deleted: killswitch.approve_resume"),
        ]
        assert permissions_audit.powers_reconcile() == 0  # the snapshot followed

    def test_deleting_a_user_that_holds_a_power_is_recorded(self):
        user = make_user(username="leaving", role="responder")
        n = head()
        user.delete()
        [(action, reason)] = new_records(n)
        assert action == Action.PERMISSION_REVOKED
        assert reason.startswith("user leaving deleted: killswitch.activate_killswitch")
        assert permissions_audit.powers_reconcile() == 0


def test_a_change_whose_record_fails_does_not_happen(viewer):
    """The record is written in the change's transaction: if it fails, the change is undone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_grant() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit storage refused'; END; $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_grant BEFORE INSERT ON killswitch_auditrecord "
            "FOR EACH ROW EXECUTE FUNCTION refuse_grant()"
        )
    with pytest.raises(Exception, match="audit storage refused"), transaction.atomic():
        viewer.is_superuser = True
        viewer.save()
    assert not User.objects.get(pk=viewer.pk).is_superuser


class TestAdmin:
    """Only superusers manage users and groups: whoever can create or reset another account holds both
    halves of the four eyes."""

    @pytest.mark.parametrize(
        "url",
        [
            lambda u, g: reverse("admin:auth_user_changelist"),
            lambda u, g: reverse("admin:auth_user_add"),
            lambda u, g: reverse("admin:auth_user_change", args=[u.pk]),
            lambda u, g: reverse("admin:auth_user_delete", args=[u.pk]),
            lambda u, g: reverse("admin:auth_user_password_change", args=[u.pk]),
            lambda u, g: reverse("admin:auth_group_changelist"),
            lambda u, g: reverse("admin:auth_group_add"),
            lambda u, g: reverse("admin:auth_group_change", args=[g.pk]),
            lambda u, g: reverse("admin:auth_group_delete", args=[g.pk]),
        ],
    )
    def test_staff_without_superuser_cannot_reach_users_or_groups(self, client, lead, url):
        staff = make_user(username="staffer", role="admin", is_staff=True)
        # Even a direct grant of every auth permission does not open the pages to a non-superuser.
        staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth"))
        client.force_login(staff)
        response = client.get(url(lead, Group.objects.get(name="lead")))
        assert response.status_code == 403
        index = client.get(reverse("admin:index")).content.decode()
        assert "/admin/auth/user/" not in index

    def test_a_superuser_ticking_superuser_in_the_form_is_recorded_with_the_actor(self, client, viewer):
        root = User.objects.create_superuser("root", password=PASSWORD)
        client.force_login(root)
        n = head()
        response = client.post(
            reverse("admin:auth_user_change", args=[viewer.pk]),
            {
                "username": "viewer",
                "is_active": "on",
                "is_superuser": "on",
                "groups": [Group.objects.get(name="viewer").pk],
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
            },
        )
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert User.objects.get(pk=viewer.pk).is_superuser
        [record] = AuditRecord.objects.filter(seq__gt=n)
        assert record.action == Action.PERMISSION_GRANTED and record.actor_name == "root"
        assert record.reason.startswith("user viewer superuser flag set: ")

    def test_a_password_reset_in_admin_is_recorded(self, client, lead):
        root = User.objects.create_superuser("root", password=PASSWORD)
        client.force_login(root)
        n = head()
        response = client.post(
            reverse("admin:auth_user_password_change", args=[lead.pk]),
            {
                "password1": "a-new-long-password-42",
                "password2": "a-new-long-password-42",
                "usable_password": "true",
            },
        )
        assert response.status_code == 302
        [record] = AuditRecord.objects.filter(seq__gt=n)
        assert record.action == Action.CREDENTIALS_CHANGED and record.actor_name == "root"
        assert record.reason.startswith("user lead password changed")


class TestReconcile:
    def test_a_queryset_update_is_found_and_recorded_once(self, viewer):
        n = head()
        User.objects.filter(pk=viewer.pk).update(is_superuser=True)
        assert new_records(n) == []  # no hook sees it
        assert permissions_audit.powers_reconcile() == 1
        [record] = AuditRecord.objects.filter(seq__gt=n)
        assert record.action == Action.EXTERNAL_PERMISSION_CHANGE
        assert record.reason.startswith("user viewer gained outside the console: ")
        assert "killswitch.approve_resume" in record.state_after["powers"]
        assert permissions_audit.powers_reconcile() == 0

    def test_raw_sql_membership_is_found(self, lead):
        user = make_user(username="sneaky")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)",
                [user.pk, Group.objects.get(name="admin").pk],
            )
            cursor.execute("DELETE FROM auth_user_groups WHERE user_id = %s", [lead.pk])
        n = head()
        assert permissions_audit.powers_reconcile() == 2
        reasons = sorted(r for _, r in new_records(n))
        assert reasons[0].startswith("user lead lost outside the console: ")
        assert reasons[1].startswith("user sneaky gained outside the console: ")

    def test_an_audited_change_first_records_an_unseen_earlier_one(self, viewer):
        User.objects.filter(pk=viewer.pk).update(is_active=False)
        n = head()
        viewer.refresh_from_db()
        viewer.is_active = True
        viewer.save()
        records = new_records(n)
        assert records[0][0] == Action.EXTERNAL_PERMISSION_CHANGE and "lost" in records[0][1]
        assert records[1] == (
            Action.PERMISSION_GRANTED,
            f"user viewer reactivated: {records[1][1].split(': ')[1]}",
        )

    def test_the_task_runs_in_beat_and_writes_a_heartbeat(self, settings):
        from killswitch.tasks import reconcile_powers

        assert settings.CELERY_BEAT_SCHEDULE["killswitch-reconcile-powers"]["task"] == (
            "killswitch.tasks.reconcile_powers"
        )
        reconcile_powers()
        beat = Heartbeat.objects.get(name="kill-switch powers")
        assert beat.last_seen is not None and beat.last_error == ""


def test_a_power_holders_second_factor_enrolled_or_removed_is_recorded(lead, viewer):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    n = head()
    device = TOTPDevice.objects.create(user=lead, name="phone", confirmed=False)
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    device.throttle_increment()  # a wrong code: counters, not credentials
    device.delete()
    TOTPDevice.objects.create(user=viewer, name="phone", confirmed=True)  # no acting power
    records = new_records(n)
    assert [a for a, _ in records] == [Action.CREDENTIALS_CHANGED, Action.CREDENTIALS_CHANGED]
    assert records[0][1].startswith("user lead second factor enrolled (holds killswitch.activate_killswitch")
    assert records[1][1].startswith("user lead second factor removed (holds ")
