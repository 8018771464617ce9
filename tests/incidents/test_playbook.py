from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from incidents.models import Checklist, IncidentType, SeverityLevel
from incidents.playbook import read_playbook

pytestmark = pytest.mark.django_db


def test_the_data_file_mirrors_the_playbook():
    levels = {s.level: s for s in SeverityLevel.objects.all()}
    assert [(lv.name, lv.response_minutes) for lv in levels.values()] == [
        ("Critical", 15),
        ("High", 60),
        ("Medium", 240),
        ("Low", 1440),
    ]
    assert levels[1].examples == ["Kill-switch failure", "Exchange API down", "Data breach"]
    assert set(IncidentType.objects.values_list("slug", flat=True)) == {
        "kill-switch-activated",
        "service-crash-loop",
        "exchange-api-failure",
        "security-incident",
        "other",
    }
    assert (
        IncidentType.objects.get(slug="security-incident").runbook_steps[0].startswith("Immediate: activate")
    )
    assert Checklist.objects.get(kind="pre_recovery").items[-1] == "Kill-switch ready to deactivate"


def test_loading_twice_changes_nothing():
    before = list(SeverityLevel.objects.values())
    call_command("load_playbook", verbosity=0)
    assert list(SeverityLevel.objects.values()) == before
    assert IncidentType.objects.count() == 5


def test_a_broken_file_is_a_clear_error_and_loads_nothing(tmp_path):
    SeverityLevel.objects.all().delete()
    bad = tmp_path / "playbook.yaml"
    bad.write_text("severities: [{level: 1}]\nincident_types: []\nchecklists: []\n")
    with pytest.raises(CommandError, match="severities must be levels 1 to 4"):
        call_command("load_playbook", file=bad)
    with pytest.raises(CommandError, match="No such file"):
        call_command("load_playbook", file=tmp_path / "missing.yaml")
    assert not SeverityLevel.objects.exists()


def test_read_playbook_rejects_unknown_checklists(tmp_path):
    data = (read_playbook.__defaults__[0]).read_text().replace("kind: recovery", "kind: nonsense")  # type: ignore[index]
    path = tmp_path / "p.yaml"
    path.write_text(data)
    with pytest.raises(ValueError, match="unknown checklist kind 'nonsense'"):
        read_playbook(path)


def test_seed_demo_creates_one_user_per_role_and_prints_passwords_once(capsys, settings, tmp_path):
    from django.contrib.auth import get_user_model

    from incidents.management.commands import seed_demo

    seed_demo.CREDENTIALS_FILE = tmp_path / "demo-credentials.txt"
    settings.DEBUG = True  # as `make run` runs it
    call_command("seed_demo")
    first = capsys.readouterr().out
    assert "demo-responder" in first and "demo-admin" in first
    users = get_user_model().objects.filter(username__startswith="demo-")
    assert sorted(u.groups.get().name for u in users) == ["admin", "executive", "lead", "responder", "viewer"]
    password = next(line.split()[2] for line in first.splitlines() if "demo-lead" in line)
    assert get_user_model().objects.get(username="demo-lead").check_password(password)
    call_command("seed_demo")
    assert password not in capsys.readouterr().out
    from incidents.models import Incident

    assert Incident.objects.count() == 3
    from actions.models import ActionItem

    assert ActionItem.objects.filter(owner__username="demo-responder", incident__status="closed").count() == 1
