"""Changing an incident's type, and every edit carrying the state the person saw: a form decided on
a stale page is refused with a clear message instead of overwriting someone else's change."""

from __future__ import annotations

import pytest
from django.urls import reverse

from incidents import services
from incidents.lifecycle import ActionRefused
from incidents.models import ChecklistKind, EventKind, Incident, IncidentType, Severity
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def url(name, incident):
    return reverse(f"incidents:{name}", args=[incident.pk])


def runbook(incident):
    return list(
        incident.checklist_items.filter(kind=ChecklistKind.RUNBOOK)
        .order_by("position")
        .values_list("text", "done_at")
    )


def itype(slug):
    return IncidentType.objects.get(slug=slug)


# --- Changing the type ---------------------------------------------------------------------------


def test_changing_the_type_adds_its_runbook_and_keeps_the_ticks(responder):
    incident = declare(responder, type_slug="kill-switch-activated")
    first = incident.checklist_items.get(kind=ChecklistKind.RUNBOOK, position=0)
    services.incident_set_checklist_item(incident=incident, actor=responder, item_id=first.pk, done=True)

    services.incident_change_type(
        incident=incident,
        actor=responder,
        incident_type=itype("service-crash-loop"),
        from_type="kill-switch-activated",
    )

    incident.refresh_from_db()
    assert incident.incident_type.slug == "service-crash-loop"
    steps = runbook(incident)
    kill_switch_steps = itype("kill-switch-activated").runbook_steps
    crash_steps = itype("service-crash-loop").runbook_steps
    assert [text for text, _ in steps] == [*kill_switch_steps, *crash_steps]
    assert steps[0][1] is not None  # the tick is kept
    assert all(done is None for _, done in steps[1:])
    event = incident.events.order_by("-id").first()
    assert (event.kind, event.actor, event.old_value, event.new_value) == (
        EventKind.TYPE_CHANGED,
        responder,
        "Kill switch activated",
        "Service crash loop",
    )
    assert event.data == {"from": "kill-switch-activated", "to": "service-crash-loop", "added_steps": 6}
    assert incident.version == event.pk


def test_a_step_the_runbook_already_has_is_not_added_twice(responder):
    incident = declare(responder, type_slug="other")
    services.incident_change_type(
        incident=incident, actor=responder, incident_type=itype("service-crash-loop")
    )
    services.incident_change_type(incident=incident, actor=responder, incident_type=itype("other"))
    services.incident_change_type(
        incident=incident, actor=responder, incident_type=itype("service-crash-loop")
    )
    assert len(runbook(incident)) == len(itype("service-crash-loop").runbook_steps)
    assert incident.events.order_by("-id").first().data["added_steps"] == 0


def test_choosing_the_same_type_changes_nothing(responder, incident):
    version = incident.version
    services.incident_change_type(incident=incident, actor=responder, incident_type=itype("other"))
    incident.refresh_from_db()
    assert incident.version == version


def test_the_type_form_changes_the_type_through_the_page(client, responder, incident):
    client.force_login(responder)
    target = itype("exchange-api-failure")
    response = client.post(url("type", incident), {"incident_type": target.pk, "from_type": "other"}, **HX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<form id="type-form"')
    incident.refresh_from_db()
    assert incident.incident_type == target
    page = client.get(url("detail", incident)).content.decode()
    assert "changed type Other → <strong>Exchange API failure</strong>" in page
    assert "Check exchange status page" in page


def test_a_viewer_may_not_change_the_type(client, viewer, incident):
    client.force_login(viewer)
    response = client.post(url("type", incident), {"incident_type": itype("other").pk, "from_type": "other"})
    assert response.status_code == 403


def test_a_closed_incident_keeps_its_type(responder):
    incident = declare(responder)
    services.incident_acknowledge(incident=incident, actor=responder)
    services.incident_change_status(incident=incident, actor=responder, to_status="resolved")
    services.incident_change_status(incident=incident, actor=responder, to_status="closed")
    with pytest.raises(ActionRefused, match="closed"):
        services.incident_change_type(
            incident=incident, actor=responder, incident_type=itype("service-crash-loop")
        )


# --- Stale forms ---------------------------------------------------------------------------------


def test_a_stale_type_form_is_refused(responder, incident):
    services.incident_change_type(
        incident=incident, actor=responder, incident_type=itype("service-crash-loop")
    )
    with pytest.raises(ActionRefused, match=r"type is now Service crash loop \(someone changed it\)"):
        services.incident_change_type(
            incident=incident, actor=responder, incident_type=itype("exchange-api-failure"), from_type="other"
        )
    # The same choice made twice (two people, one decision) is no error.
    services.incident_change_type(
        incident=incident, actor=responder, incident_type=itype("service-crash-loop"), from_type="other"
    )
    assert Incident.objects.get(pk=incident.pk).incident_type.slug == "service-crash-loop"


def test_a_stale_severity_form_is_refused_with_a_clear_message(client, responder, incident):
    other = make_user(role="responder")
    services.incident_change_severity(incident=incident, actor=other, severity=Severity.SEV2, reason="worse")
    client.force_login(responder)
    response = client.post(
        url("severity", incident), {"severity": "4", "reason": "cosmetic", "from_severity": "3"}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 422
    assert f"INC-{incident.pk} is now SEV-2 (someone changed it); nothing changed." in body
    assert 'value="cosmetic"' in body  # the person's reason is kept
    assert Incident.objects.get(pk=incident.pk).severity == Severity.SEV2
    # The same change as the other person's: nothing to do, no error.
    response = client.post(
        url("severity", incident), {"severity": "2", "reason": "worse", "from_severity": "3"}, **HX
    )
    assert response.status_code == 200


def test_a_stale_commander_form_is_refused(client, responder, lead, incident):
    bob = make_user(username="bob", role="responder")
    services.incident_assign_commander(incident=incident, actor=lead, commander=bob)
    client.force_login(responder)
    response = client.post(
        url("commander", incident), {"commander": responder.pk, "from_commander": ""}, **HX
    )
    assert response.status_code == 422
    assert f"INC-{incident.pk}&#x27;s commander is now bob (someone changed it); nothing changed." in (
        response.content.decode()
    )
    assert Incident.objects.get(pk=incident.pk).commander == bob
    response = client.post(
        url("commander", incident), {"commander": responder.pk, "from_commander": str(bob.pk)}, **HX
    )
    assert response.status_code == 200
    assert Incident.objects.get(pk=incident.pk).commander == responder


def test_the_page_carries_what_the_person_saw(client, responder, incident):
    client.force_login(responder)
    page = client.get(url("detail", incident)).content.decode()
    assert '<input type="hidden" name="from_severity" value="3">' in page
    assert '<input type="hidden" name="from_commander" value="">' in page
    assert '<input type="hidden" name="from_type" value="other">' in page


class TestEditForm:
    def form(self, incident, **changes):
        data = {
            "title": incident.title,
            "description": incident.description,
            "affected_components": ", ".join(incident.affected_components),
            "seen_title": incident.title,
            "seen_description": incident.description,
            "seen_affected_components": ", ".join(incident.affected_components),
        }
        return {**data, **changes}

    def test_a_field_changed_meanwhile_is_not_overwritten(self, client, lead, incident):
        seen = self.form(incident, title="My new title")
        services.incident_edit(
            incident=incident,
            actor=lead,
            title="Their new title",
            description="",
            affected_components=[],
        )
        client.force_login(lead)
        response = client.post(url("edit", incident), seen)
        body = response.content.decode()
        assert response.status_code == 422
        assert "Someone changed the title while you were editing (now: “Their new title”)" in body
        assert 'value="My new title"' in body  # the person's text is kept to copy from
        assert Incident.objects.get(pk=incident.pk).title == "Their new title"

    def test_a_change_to_another_field_is_kept_and_mine_applied(self, client, lead, incident):
        seen = self.form(incident, description="Seen from the exchange side")
        services.incident_edit(
            incident=incident, actor=lead, title="Their new title", description="", affected_components=[]
        )
        client.force_login(lead)
        assert client.post(url("edit", incident), seen).status_code == 302
        incident.refresh_from_db()
        assert (incident.title, incident.description) == ("Their new title", "Seen from the exchange side")

    def test_the_edit_form_carries_the_values_it_showed(self, client, lead, incident):
        client.force_login(lead)
        body = client.get(url("edit", incident)).content.decode()
        assert f'name="seen_title" value="{incident.title}"' in body
