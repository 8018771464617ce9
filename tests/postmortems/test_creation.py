from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction

from incidents import services as incident_services
from incidents.models import Status
from incidents.playbook import load_playbook
from postmortems import prefill, services
from postmortems.models import PostMortem, PostMortemRevision, Requirement
from tests.incidents.factories import declare, make_user
from tests.postmortems.factories import audit_change, resolved

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_playbook_file_loads_each_severitys_requirement():
    rows = {r.severity: (r.required, r.deadline_hours) for r in Requirement.objects.all()}
    assert rows == {1: ("yes", 48), 2: ("yes", 168), 3: ("optional", 336), 4: ("no", None)}


def test_reloading_the_playbook_keeps_an_admins_edit():
    Requirement.objects.filter(severity=3).update(required="yes", deadline_hours=100)
    load_playbook()
    assert Requirement.objects.get(severity=3).required == "yes"


def test_resolving_a_sev1_creates_its_postmortem_due_48_hours_later_with_the_commander_as_author():
    commander = make_user(role="responder")
    with time_machine.travel(T0, tick=False):
        incident = resolved(1, commander=commander, title="Orders stuck")
    pm = incident.postmortem
    assert pm.deadline == T0 + timedelta(hours=48)
    assert pm.author == commander and pm.status == "draft" and pm.required
    assert commander.has_perm("postmortems.change_postmortem", pm)
    body = PostMortemRevision.objects.get(postmortem=pm, number=1).body
    assert body.startswith("# Incident Post-Mortem: Orders stuck\n")
    assert "**Severity:** SEV-1" in body and f"**Commander:** {commander.username}" in body
    assert "## Timeline\n- 09:00 - Declared" in body
    assert [s for s in prefill.sections_in(body)] == list(prefill.SECTIONS)
    # The resolution's row stays the incident's latest: creation writes none of its own.
    assert incident.events.order_by("-id").first().kind == "status_changed"


def test_a_sev2_is_due_in_a_week_and_the_deadline_follows_the_edited_data():
    with time_machine.travel(T0, tick=False):
        assert resolved(2).postmortem.deadline == T0 + timedelta(hours=168)
        Requirement.objects.filter(severity=2).update(deadline_hours=24)
        assert resolved(2).postmortem.deadline == T0 + timedelta(hours=24)


def test_sev3_and_sev4_get_none_automatically_and_only_sev3_on_request():
    with time_machine.travel(T0, tick=False):
        sev3, sev4 = resolved(3), resolved(4)
    assert not PostMortem.objects.exists()
    user = make_user(role="responder")
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        pm = services.postmortem_request(incident=sev3, actor=user)
    # Counted from the resolution, not from the request; the request is on the timeline.
    assert pm.deadline == T0 + timedelta(hours=336) and not pm.required
    assert sev3.events.filter(kind="postmortem", data__step="created", actor=user).count() == 1
    with pytest.raises(services.PostMortemRefused, match="no post-mortem for SEV-4"):
        services.postmortem_request(incident=sev4, actor=user)


def test_an_open_incident_gets_no_postmortem_on_request():
    incident = declare(severity=3)
    with pytest.raises(services.PostMortemRefused, match="once the incident is resolved"):
        services.postmortem_request(incident=incident, actor=make_user(role="responder"))


def test_reopening_keeps_the_postmortem_and_resolving_again_creates_no_second():
    incident = resolved(1)
    pm = incident.postmortem
    actor = incident.commander
    incident_services.incident_change_status(incident=incident, actor=actor, to_status=Status.INVESTIGATING)
    incident_services.incident_acknowledge(incident=incident, actor=actor)
    incident_services.incident_change_status(
        incident=incident, actor=actor, to_status=Status.RESOLVED, override_reason="again"
    )
    assert list(PostMortem.objects.filter(incident=incident)) == [pm]


def test_the_database_refuses_a_second_postmortem_for_one_incident():
    pm = resolved(1).postmortem
    with pytest.raises(IntegrityError), transaction.atomic():
        PostMortem.objects.create(incident=pm.incident, title="again", created_at=pm.created_at)


def test_a_drill_gets_no_postmortem():
    incident = resolved(1, is_drill=True)
    assert not PostMortem.objects.filter(incident=incident).exists()
    with pytest.raises(services.PostMortemRefused, match="drill"):
        services.postmortem_request(incident=incident, actor=make_user(role="responder"))


def test_the_author_is_the_declarer_when_nobody_commanded(responder):
    incident = declare(responder, severity=3)
    incident_services.incident_acknowledge(incident=incident, actor=responder)
    incident_services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    pm = services.postmortem_request(incident=incident, actor=make_user(role="lead"))
    assert pm.author == responder


def test_halted_time_sums_each_halt_resume_interval_overlapping_the_incident_clipped_to_it(ks_files):
    # Halted before the incident (clipped at detection), resumed, halted again until after resolution
    # (clipped at resolution); the drill target's halt is not counted for a real incident.
    audit_change("production", "halted", T0 - timedelta(minutes=30))
    audit_change("production", "trading", T0 + timedelta(minutes=10))
    audit_change("drill", "halted", T0 + timedelta(minutes=5))
    audit_change("production", "halted", T0 + timedelta(minutes=40))
    with time_machine.travel(T0, tick=False):
        incident = declare(severity=1, detected_at=T0)
    commander = incident.declared_by
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        incident_services.incident_acknowledge(incident=incident, actor=commander)
        incident_services.incident_assign_commander(incident=incident, actor=commander, commander=commander)
    with time_machine.travel(T0 + timedelta(minutes=60), tick=False):
        incident_services.incident_change_status(
            incident=incident, actor=commander, to_status=Status.RESOLVED, override_reason="fixed"
        )
    audit_change("production", "trading", T0 + timedelta(minutes=90))
    pm = PostMortem.objects.get(incident=incident)
    assert pm.halted_seconds == (10 + 20) * 60
    assert [(d["target"], d["seconds"]) for d in pm.halted_detail] == [
        ("production", 600),
        ("production", 1200),
    ]
    assert "- Trading halted for 0 hours 30 minutes" in pm.revisions.get().body
    assert "**Duration:** 1 hours 0 minutes" in pm.revisions.get().body


def test_orders_and_exposure_come_from_a_status_snapshot_on_the_incident():
    incident = declare(severity=1)
    actor = incident.declared_by
    incident_services.incident_record_event(
        incident=incident,
        kind="note",
        actor=actor,
        message="CDB /status",
        data={
            "risk_state": {"total_exposure": 12500.5, "pending_orders": 3},
            "stats": {"orders_rejected": 17},
        },
    )
    incident_services.incident_acknowledge(incident=incident, actor=actor)
    incident_services.incident_assign_commander(incident=incident, actor=actor, commander=actor)
    incident_services.incident_change_status(
        incident=incident, actor=actor, to_status=Status.RESOLVED, override_reason="x"
    )
    pm = PostMortem.objects.get(incident=incident)
    assert (pm.orders_affected, str(pm.exposure_usd)) == (17, "12500.50")
    assert "- 17 orders affected\n- 12500.5 USD exposure" in pm.revisions.get().body


def test_a_security_incident_gets_the_detailed_report_sections():
    pm = resolved(1, type_slug="security-incident").postmortem
    sections = prefill.sections_in(pm.revisions.get().body)
    assert sections[: sections.index("Action Items")][-5:] == list(prefill.SECURITY_SECTIONS)
    assert sections[-2:] == ["Action Items", "Lessons Learned"]


def test_the_generated_timeline_is_kept_apart_from_the_editable_document():
    pm = resolved(1).postmortem
    assert pm.generated_timeline.startswith("- ") and pm.generated_timeline in pm.revisions.get().body


def test_the_incident_page_offers_an_optional_postmortem_and_links_a_made_one(client):
    sev3 = resolved(3)
    client.force_login(sev3.commander)
    page = client.get(f"/incidents/{sev3.pk}/").content.decode()
    assert 'id="incident-postmortem"' in page and "Write a post-mortem" in page
    pm = resolved(1).postmortem
    client.force_login(pm.author)
    page = client.get(f"/incidents/{pm.incident_id}/").content.decode()
    assert f'href="/postmortems/{pm.pk}/"' in page
