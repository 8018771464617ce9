"""Declaring with the playbook's decision tree: it stops asking once an answer decides the severity,
and choosing a lower severity than it suggests needs a reason, kept on the timeline."""

from __future__ import annotations

import pytest
from django.urls import reverse

from incidents import services
from incidents.lifecycle import ActionRefused
from incidents.models import EventKind, Incident, IncidentType, Severity
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db


def post(client, **data):
    base = {
        "title": "Orders rejected",
        "incident_type": str(IncidentType.objects.get(slug="other").pk),
        "severity": "",
        "affected_components": "",
    }
    return client.post(reverse("incidents:declare"), {**base, **data})


def suggest(client, **answers):
    return client.get(reverse("incidents:declare_suggest"), answers).content.decode()


def test_the_tree_stops_asking_once_money_is_being_lost(client, responder):
    client.force_login(responder)
    body = suggest(client, losing_money="yes")
    assert 'Suggested: <span class="sev sev-1">SEV-1</span>' in body
    assert '<div id="tree-state" class="tree-state" data-hide="services_down degraded"' in body
    response = post(client, losing_money="yes")
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.severity == Severity.SEV1
    assert incident.decision_answers == {
        "losing_money": True,
        "services_down": None,
        "degraded": None,
        "suggested": 1,
        "activate_kill_switch": True,
    }
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "Is trading actively losing money?" in page and "Is performance degraded?" not in page


def test_a_service_down_decides_without_the_third_question(client, responder):
    client.force_login(responder)
    body = suggest(client, losing_money="no", services_down="core")
    assert 'data-hide="degraded"' in body
    assert "SEV-1" in body
    post(client, losing_money="no", services_down="one")
    assert Incident.objects.get().decision_answers["suggested"] == 2


def test_answers_below_the_deciding_one_are_not_recorded(client, responder):
    """Without JavaScript every question shows: later answers than the deciding one are ignored."""
    client.force_login(responder)
    post(client, losing_money="yes", services_down="none", degraded="no")
    answers = Incident.objects.get().decision_answers
    assert (answers["losing_money"], answers["services_down"], answers["degraded"]) == (True, None, None)


def test_an_undecided_tree_is_refused_naming_the_next_question(client, responder):
    client.force_login(responder)
    response = post(client, losing_money="no", severity="2", title="Keep me")
    body = response.content.decode()
    assert response.status_code == 422
    assert "Finish the decision tree (next: Is any service completely down?) or clear it." in body
    assert 'value="Keep me"' in body
    assert not Incident.objects.exists()


def test_every_question_shows_before_any_answer(client, responder):
    client.force_login(responder)
    body = client.get(reverse("incidents:declare")).content.decode()
    for name in ("losing_money", "services_down", "degraded"):
        assert f'id="q-{name}">' in body
    assert 'data-hide=""' in body


# --- A lower severity than the tree's needs a reason ---------------------------------------------


def test_a_lower_severity_than_suggested_without_a_reason_is_refused(client, responder):
    client.force_login(responder)
    response = post(client, losing_money="yes", severity="3")
    assert response.status_code == 422
    assert "SEV-3 is lower than the decision tree&#x27;s SEV-1: say why." in response.content.decode()
    assert not Incident.objects.exists()


def test_a_lower_severity_with_a_reason_is_declared_and_the_reason_is_on_the_timeline(client, responder):
    client.force_login(responder)
    response = post(
        client, losing_money="yes", severity="3", severity_reason="Paper trading only, no real money"
    )
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.severity == 3
    declared = incident.events.get(kind=EventKind.DECLARED)
    assert declared.data["below_suggestion"] == {
        "suggested": 1,
        "reason": "Paper trading only, no real money",
    }
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "below the decision tree's SEV-1: Paper trading only, no real money" in page


def test_a_higher_severity_than_suggested_needs_no_reason(client, responder):
    client.force_login(responder)
    assert (
        post(client, losing_money="no", services_down="none", degraded="yes", severity="1").status_code == 302
    )
    assert Incident.objects.get().severity == 1


def test_the_service_itself_refuses_a_lower_severity_without_a_reason(responder):
    answers = {"losing_money": True, "services_down": None, "degraded": None, "suggested": 1}
    with pytest.raises(ActionRefused, match="lower than the decision tree"):
        declare(responder, severity=Severity.SEV2, decision_answers=answers)
    assert not Incident.objects.exists()


def test_lowering_below_the_suggestion_later_says_so_on_the_timeline(client, responder):
    answers = {"losing_money": False, "services_down": "one", "degraded": None, "suggested": 2}
    incident = declare(responder, severity=Severity.SEV2, decision_answers=answers)
    services.incident_change_severity(
        incident=incident, actor=responder, severity=Severity.SEV4, reason="Drill environment only"
    )
    event = incident.events.order_by("-id").first()
    assert event.data == {"below_suggestion": {"suggested": 2, "reason": "Drill environment only"}}
    client.force_login(responder)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "below the decision tree's SEV-2" in page
