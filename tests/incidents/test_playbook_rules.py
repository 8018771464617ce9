"""The lifecycle's rules come from the playbook's data (SeverityLevel), not from `severity <= SEV-2`:
flipping a flag, in the database or in Django admin, changes what the console allows and shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from incidents import services
from incidents.lifecycle import ActionRefused
from incidents.models import Severity, SeverityLevel, Status
from incidents.playbook import playbook_adopt, read_playbook
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db


def flag(level: int, **flags: bool) -> None:
    SeverityLevel.objects.filter(level=level).update(**flags)


def acknowledged(actor, **kwargs):
    incident = declare(actor, **kwargs)
    services.incident_acknowledge(incident=incident, actor=actor)
    return incident


# --- commander_required ---------------------------------------------------------------------------


def test_a_sev3_needs_a_commander_once_its_level_requires_one(responder):
    flag(3, commander_required=True)
    incident = acknowledged(responder, severity=Severity.SEV3)
    with pytest.raises(ActionRefused, match="SEV-3 needs an incident commander"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)


def test_a_sev1_leaves_triage_without_commander_once_its_level_no_longer_requires_one(responder):
    flag(1, commander_required=False)
    incident = acknowledged(responder, severity=Severity.SEV1)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


def test_adopting_a_playbook_version_changes_the_rule(responder):
    """As a person changes it: a new playbook version where SEV-2 no longer needs a commander."""
    document = read_playbook()
    document["severities"][1]["commander_required"] = False
    playbook_adopt(document=document, note="SEV-2 without commander", actor=None, source="admin")
    incident = acknowledged(responder, severity=Severity.SEV2)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)


def test_the_levels_are_read_only_in_admin(client):
    admin = make_user(role="admin", is_staff=True)
    client.force_login(admin)
    level = SeverityLevel.objects.get(level=2)
    url = reverse("admin:incidents_severitylevel_change", args=[level.pk])
    page = client.get(url)
    assert page.status_code == 200 and b"The playbook is versioned" in page.content
    client.post(url, {"level": "2", "name": "Changed", "response_minutes": "1"})
    assert SeverityLevel.objects.get(level=2).name == level.name


# --- pre_recovery_required -----------------------------------------------------------------------


def test_resolving_a_sev3_needs_the_pre_recovery_checklist_once_its_level_requires_it(responder):
    flag(3, pre_recovery_required=True)
    incident = acknowledged(responder, severity=Severity.SEV3)
    with pytest.raises(ActionRefused, match="pre-recovery"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    services.incident_change_status(
        incident=incident, actor=responder, to_status=Status.RESOLVED, override_reason="Known noise"
    )
    assert incident.events.order_by("-id").first().data == {"pre_recovery_override": "Known noise"}


def test_a_sev2_resolves_without_the_checklist_once_its_level_no_longer_requires_it(responder):
    flag(2, pre_recovery_required=False, commander_required=False)
    incident = acknowledged(responder, severity=Severity.SEV2)
    services.incident_change_status(
        incident=incident, actor=responder, to_status=Status.RESOLVED, override_reason="not needed"
    )
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    # Nothing was overridden: the rule did not apply, so no override is recorded.
    assert incident.events.order_by("-id").first().data == {}


# --- kill_switch_default -------------------------------------------------------------------------


def test_the_kill_switch_recommendation_follows_the_level(responder):
    sev3 = declare(responder, severity=Severity.SEV3)
    sev1 = declare(responder, severity=Severity.SEV1)
    assert (sev1.kill_switch_recommended, sev3.kill_switch_recommended) == (True, False)
    flag(1, kill_switch_default=False)
    flag(3, kill_switch_default=True)
    assert declare(responder, severity=Severity.SEV1).kill_switch_recommended is False
    assert declare(responder, severity=Severity.SEV3).kill_switch_recommended is True


def test_the_decision_trees_kill_switch_advice_follows_the_suggested_level(client, responder):
    client.force_login(responder)
    answers = {"losing_money": "no", "services_down": "one", "degraded": "no"}
    body = client.get(reverse("incidents:declare_suggest"), answers).content.decode()
    assert 'Suggested: <span class="sev sev-2">SEV-2</span>' in body and "activate the kill switch" in body
    flag(2, kill_switch_default=False)
    body = client.get(reverse("incidents:declare_suggest"), answers).content.decode()
    assert "SEV-2" in body and "activate the kill switch" not in body
    # Money being lost is the tree's own instruction to halt, whatever the level's default.
    flag(1, kill_switch_default=False)
    body = client.get(reverse("incidents:declare_suggest"), {"losing_money": "yes"}).content.decode()
    assert "activate the kill switch" in body


# --- The page shows what the level requires ------------------------------------------------------


def test_the_page_marks_the_missing_commander_and_the_required_checklist_by_the_level(
    client, responder, lead
):
    flag(3, commander_required=True, pre_recovery_required=True)
    flag(2, commander_required=False, pre_recovery_required=False)
    sev3 = acknowledged(responder, severity=Severity.SEV3)
    sev2 = acknowledged(responder, severity=Severity.SEV2)
    client.force_login(lead)
    page3 = client.get(reverse("incidents:detail", args=[sev3.pk])).content.decode()
    page2 = client.get(reverse("incidents:detail", args=[sev2.pk])).content.decode()
    assert 'data-testid="commander-missing"' in page3 and 'data-testid="commander-missing"' not in page2
    assert "required to resolve" in page3 and "required to resolve" not in page2
    # Resolving with an override is offered to the lead where the checklist is required.
    services.incident_assign_commander(incident=sev3, actor=lead, commander=responder)
    page3 = client.get(reverse("incidents:detail", args=[sev3.pk])).content.decode()
    assert 'id="override-form"' in page3 and 'id="override-form"' not in page2


def test_with_no_playbook_loaded_the_playbooks_own_rules_apply(responder):
    SeverityLevel.objects.all().delete()
    incident = acknowledged(responder, severity=Severity.SEV2)
    assert incident.kill_switch_recommended
    with pytest.raises(ActionRefused, match="commander"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)
