"""`seed_demo` is for a laptop: it refuses to run with DEBUG off unless forced, and never gives one
person both halves of the four eyes: no demo account is a superuser or can manage accounts (whoever
can create or reset another account can act as a second person), each holds exactly one role, and a
demo resume takes two different demo accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from incidents.management.commands import seed_demo
from killswitch import services
from killswitch.models import ResumeStatus

pytestmark = pytest.mark.django_db
JUST = "Demo: exchange recovered, orders fill normally for 20 minutes"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ks_files: Any) -> Path:
    path = tmp_path / "demo-credentials.txt"
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", path)
    return path


def demo_users() -> Any:
    return User.objects.filter(username__startswith="demo-").order_by("username")


def test_it_refuses_to_run_with_debug_off(settings, credentials):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo", "--no-incidents")
    assert not demo_users().exists() and not credentials.exists()


def test_force_runs_it_with_debug_off(settings):
    settings.DEBUG = False
    call_command("seed_demo", "--no-incidents", "--force")
    assert demo_users().count() == 5


def test_no_demo_account_is_a_superuser_or_can_manage_accounts(settings):
    settings.DEBUG = True
    call_command("seed_demo", "--no-incidents")
    auth_perms = [f"auth.{p.codename}" for p in Permission.objects.filter(content_type__app_label="auth")]
    for user in demo_users():
        assert not user.is_superuser, user
        assert [g.name for g in user.groups.all()] == [user.username.removeprefix("demo-")]
        assert not any(user.has_perm(p) for p in auth_perms), user
    # The demo admin (staff, for the playbook data) cannot open, create or reset accounts in admin.
    client = Client()
    client.force_login(User.objects.get(username="demo-admin"))
    other = User.objects.get(username="demo-lead")
    for url in (
        reverse("admin:auth_user_add"),
        reverse("admin:auth_user_change", args=[other.pk]),
        reverse("admin:auth_user_password_change", args=[other.pk]),
    ):
        assert client.get(url).status_code == 403, url


def test_a_demo_resume_takes_two_different_demo_accounts(settings, ks_files):
    settings.DEBUG = True
    call_command("seed_demo", "--no-incidents")
    lead, admin = User.objects.get(username="demo-lead"), User.objects.get(username="demo-admin")
    services.killswitch_activate(
        target="production",
        actor=User.objects.get(username="demo-responder"),
        reason="manual",
        message="demo",
    )
    request = services.killswitch_request_resume(target="production", actor=lead, justification=JUST)
    with pytest.raises(services.KillSwitchRefused, match="different person"):
        services.killswitch_approve_resume(request_id=request.pk, actor=lead, reauthenticated=True)
    services.killswitch_approve_resume(request_id=request.pk, actor=admin, reauthenticated=True)
    request.refresh_from_db()
    assert request.status == ResumeStatus.APPROVED


def test_it_refuses_a_demo_account_someone_made_a_superuser(settings):
    """A re-run checks the accounts it finds, too: it never leaves a demo superuser in place silently."""
    settings.DEBUG = True
    call_command("seed_demo", "--no-incidents")
    User.objects.filter(username="demo-viewer").update(is_superuser=True)
    with pytest.raises(CommandError, match="demo-viewer is a superuser"):
        call_command("seed_demo", "--no-incidents")
