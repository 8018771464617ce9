"""Running a drill: its incident opened through the real alert routing and marked DRILL, its
participants paged instead of the rota, the kill switch's drill target only, times measured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from detection.models import Signal
from detection.services import AlertInput, signals_ingest
from drills import measures, services
from drills.models import Status
from escalation.services import escalation_sweep
from incidents import services as incident_services
from incidents.models import Incident, TimelineEvent
from incidents.models import Status as IncidentStatus
from killswitch import services as ks
from killswitch.models import AuditRecord
from tests.drills.factories import drill, drill_type
from tests.incidents.factories import make_user
from tests.oncall.factories import rotation

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def _real_service_down(fingerprint: str = "real-1") -> AlertInput:
    """ServiceDown on cdb_core as the Alertmanager webhook turns it into an alert."""
    return AlertInput(
        source="alertmanager",
        fingerprint=fingerprint,
        status="firing",
        starts_at=NOW,
        severity=2,
        title="ServiceDown",
        group_key="alertmanager:alertname=ServiceDown,job=cdb_core",
        labels={"alertname": "ServiceDown", "job": "cdb_core", "drill": "1"},  # a label makes no drill
    )


@time_machine.travel(NOW, tick=False)
def test_starting_a_drill_opens_a_drill_incident_through_alert_routing():
    one = drill(drill_type("failover-test"), at=NOW + timedelta(hours=1))
    one = services.drill_start(drill=one, actor=make_user(role="responder"))
    incident = one.incident
    assert incident is not None and incident.is_drill
    assert (one.status, one.started_at) == (Status.RUNNING, NOW)
    assert incident.incident_type.slug == "service-crash-loop" and incident.severity == 2
    assert incident.title == "DRILL: ServiceDown on cdb_core"
    signal = Signal.objects.get(incident=incident)
    assert (signal.source, signal.labels["alertname"]) == ("drill", "ServiceDown")
    kinds = list(
        TimelineEvent.objects.filter(incident=incident).order_by("id").values_list("kind", flat=True)
    )
    assert (kinds[0] == "declared" and "signal" in kinds[:2]) or "declared" in kinds
    assert "drill" in kinds
    # A second click changes nothing.
    again = services.drill_start(drill=one, actor=make_user(role="responder"))
    assert again.incident_id == incident.pk and Incident.objects.filter(is_drill=True).count() == 1


@time_machine.travel(NOW, tick=False)
def test_a_drill_alert_never_joins_a_real_incident_nor_a_real_alert_the_drill():
    signals_ingest([_real_service_down()])
    real = Incident.objects.get()
    assert not real.is_drill  # a `drill` label from a webhook does not make a drill
    started = services.drill_start(
        drill=drill(drill_type("failover-test")), actor=make_user(role="responder")
    )
    assert started.incident is not None and started.incident.pk != real.pk and started.incident.is_drill
    signals_ingest([_real_service_down("real-2")])
    assert set(Signal.objects.filter(source="alertmanager").values_list("incident_id", flat=True)) == {
        real.pk
    }
    assert Signal.objects.get(source="drill").incident_id == started.incident.pk


@time_machine.travel(NOW, tick=False)
def test_a_drill_pages_its_participants_instead_of_the_rota():
    oncall = make_user(role="responder", username="oncall-alice")
    rotation(
        oncall,
        make_user(role="responder"),
        effective_from=(NOW - timedelta(days=1)).date(),
        handoff_weekday=None,
    )
    bob = make_user(role="responder", username="drill-bob")
    kind = drill_type("failover-test")
    kind.participants.add(bob)
    started = services.drill_start(drill=drill(kind), actor=make_user(role="responder"))
    escalation_sweep()
    pages = list(
        TimelineEvent.objects.filter(incident=started.incident, kind="escalation").values_list(
            "message", flat=True
        )
    )
    assert pages and all("drill-bob" in p and "oncall-alice" not in p for p in pages)


def test_a_kill_switch_drill_acts_on_the_drill_target_and_measures_each_time(ks_files, client):
    production_before = (ks_files.production.read_bytes(), ks_files.production.stat().st_mtime_ns)
    responder, lead, approver = make_user(role="responder"), make_user(role="lead"), make_user(role="lead")
    with time_machine.travel(NOW, tick=False) as clock:
        one = services.drill_start(drill=drill(drill_type("kill-switch-test")), actor=responder)
        incident = one.incident
        assert incident is not None
        clock.shift(90)
        incident_services.incident_acknowledge(incident=incident, actor=responder)
        incident_services.incident_assign_commander(incident=incident, actor=lead, commander=lead)
        incident_services.incident_change_status(
            incident=incident, actor=lead, to_status=IncidentStatus.MITIGATING
        )
        clock.shift(150)  # 240 s in
        ks.killswitch_activate(
            target="drill", actor=responder, reason="manual", message="drill", incident=incident
        )
        with pytest.raises(ks.KillSwitchRefused):  # a drill never acts on production
            ks.killswitch_activate(
                target="production", actor=responder, reason="manual", message="x", incident=incident
            )
        clock.shift(360)  # 600 s in
        request = ks.killswitch_request_resume(
            target="drill", actor=lead, justification="Drill: the halt was confirmed", incident=incident
        )
        clock.shift(600)  # 1200 s in
        ks.killswitch_approve_resume(request_id=request.pk, actor=approver, reauthenticated=True)
        clock.shift(3000)  # 4200 s in: later than the 3600 s target
        incident_services.incident_change_status(
            incident=incident, actor=lead, to_status=IncidentStatus.RESOLVED, override_reason="Drill over"
        )
    assert "halted" not in ks_files.production.read_text()
    assert (ks_files.production.read_bytes(), ks_files.production.stat().st_mtime_ns) == production_before
    assert not AuditRecord.objects.filter(target="production", incident_id=incident.pk).exists()
    one.refresh_from_db()
    assert measures.measure(one) == {
        "acknowledge": 90,
        "halt": 240,
        "confirmed_halt": 240,
        "approved_resume": 1200,
        "recover": 4200,
    }
    verdicts = {row.key: row.verdict for row in measures.rows(one)}
    assert verdicts == {
        "acknowledge": "pass",
        "halt": "pass",
        "confirmed_halt": "pass",
        "approved_resume": "pass",
        "recover": "fail",
    }
    # The review: a lead completes it; the type's last run is this drill.
    client.force_login(lead)
    page = client.get(reverse("drills:review", args=[one.pk])).content.decode()
    assert 'data-testid="measure-approved_resume"' in page and "1200 s" in page and "1800 s" in page
    response = client.post(
        reverse("drills:review", args=[one.pk]),
        {"findings": "Approval took a while.", "playbook_proposal": "Name a second approver.",
         "playbook_proposal_url": "https://example.com/pr/1", "complete": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    one.refresh_from_db()
    assert one.status == Status.COMPLETED and one.measured["approved_resume"] == 1200
    from drills import selectors

    row = next(r for r in selectors.programme() if r.drill_type.slug == "kill-switch-test")
    assert row.last_run == NOW


def test_a_responder_cannot_complete_a_review_but_the_owner_of_its_type_can(client):
    owner = make_user(role="responder")
    kind = drill_type("failover-test", owner=owner)
    one = drill(kind, status=Status.RUNNING, started_at=NOW)
    client.force_login(make_user(role="responder"))
    assert client.post(reverse("drills:review", args=[one.pk]), {"findings": "x"}).status_code == 403
    client.force_login(owner)
    assert (
        client.post(reverse("drills:review", args=[one.pk]), {"findings": "x", "complete": "on"}).status_code
        == 302
    )
    one.refresh_from_db()
    assert one.status == Status.COMPLETED and one.reviewed_by == owner


def test_drill_pages_say_drill(client):
    with time_machine.travel(NOW, tick=False):
        started = services.drill_start(
            drill=drill(drill_type("failover-test")), actor=make_user(role="responder")
        )
    client.force_login(make_user(role="viewer"))
    assert started.incident is not None
    incident_page = client.get(reverse("incidents:detail", args=[started.incident.pk])).content.decode()
    assert ">DRILL<" in incident_page
    assert ">DRILL</span>" in client.get(reverse("drills:detail", args=[started.pk])).content.decode()


def test_an_action_item_added_from_the_review_goes_on_the_drill_incident_marked_drill(client):
    from actions.models import ActionItem

    with time_machine.travel(NOW, tick=False):
        started = services.drill_start(
            drill=drill(drill_type("failover-test")), actor=make_user(role="responder")
        )
    lead = make_user(role="lead")
    client.force_login(lead)
    review = reverse("drills:review", args=[started.pk])
    page = client.get(review).content.decode()
    assert 'id="action-items"' in page and 'name="origin" value="drill"' in page
    assert started.incident is not None
    response = client.post(
        reverse("actions:create", args=[started.incident.pk]),
        {"title": "Automate the failover check", "origin": "drill", "next": review, "owner": lead.pk},
    )
    assert response.status_code == 302 and response.url == review
    item = ActionItem.objects.get()
    assert (item.incident_id, item.origin, item.owner) == (started.incident.pk, "drill", lead)
    assert "Automate the failover check" in client.get(review).content.decode()
