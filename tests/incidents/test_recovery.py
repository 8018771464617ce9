"""Recovery, verified (playbook section 7): pre-recovery facts the console checks itself, the monitoring
window after a resume, re-triggers, reopening, and the war room."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from detection.models import Health, MonitoredService, PrometheusRule, RuleState, Signal
from incidents import services
from incidents.lifecycle import ActionRefused
from incidents.models import ChecklistKind, Severity, Status
from killswitch import services as ks
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db
JUST = "Root cause fixed, services healthy, metrics normal."


def working(responder: Any, severity: int = Severity.SEV2, **kwargs: Any) -> Any:
    """An acknowledged incident with a commander, being mitigated."""
    incident = declare(responder, severity=severity, **kwargs)
    services.incident_acknowledge(incident=incident, actor=responder)
    services.incident_assign_commander(incident=incident, actor=responder, commander=responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.MITIGATING)
    return incident


def tick_manual_items(incident: Any, actor: Any) -> None:
    for item in incident.checklist_items.filter(kind=ChecklistKind.PRE_RECOVERY, fact_name=""):
        services.incident_set_checklist_item(incident=incident, actor=actor, item_id=item.pk, done=True)


def facts_on_page(client: Any, incident: Any) -> dict[str, str]:
    import re

    body = client.get(reverse("incidents:facts", args=[incident.pk])).content.decode()
    return dict(re.findall(r'data-fact="(\w+)" data-state="(\w+)"', body))


# --- The facts ----------------------------------------------------------------------------------


def test_items_the_console_checks_are_judged_live_not_ticked(client, responder):
    incident = working(responder)
    checked = dict(
        incident.checklist_items.filter(kind=ChecklistKind.PRE_RECOVERY)
        .exclude(fact_name="")
        .values_list("text", "fact_name")
    )
    assert checked == {
        "All services healthy": "services_healthy",
        "Metrics baseline normal": "metrics_normal",
        "No pending alerts on the incident": "no_pending_alerts",
        "Kill-switch ready to deactivate": "kill_switch_ready",
    }
    item = incident.checklist_items.get(fact_name="services_healthy")
    with pytest.raises(ActionRefused, match="checked by the console itself"):
        services.incident_set_checklist_item(incident=incident, actor=responder, item_id=item.pk, done=True)
    client.force_login(responder)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    # No tick box for them: a verdict, and a checklist that refreshes itself.
    assert 'data-fact="services_healthy" data-state="unknown"' in page
    assert "Health polling watches no core service" in page
    assert f'hx-get="{reverse("incidents:facts", args=[incident.pk])}" hx-trigger="every 10s"' in page


def test_resolving_needs_every_fact_true_or_a_leads_override(client, responder, lead, recovered):
    incident = working(responder)
    tick_manual_items(incident, responder)
    MonitoredService.objects.filter(name="cdb_risk").update(state=Health.DOWN)
    with pytest.raises(ActionRefused, match="pre-recovery checklist"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    client.force_login(lead)
    assert facts_on_page(client, incident) == {
        "services_healthy": "failing",
        "metrics_normal": "ok",
        "no_pending_alerts": "ok",
        "kill_switch_ready": "ok",
    }
    # A lead may still resolve, with the reason recorded.
    services.incident_change_status(
        incident=incident, actor=lead, to_status=Status.RESOLVED, override_reason="risk restarts on its own"
    )
    assert incident.events.order_by("-id").first().data["pre_recovery_override"] == "risk restarts on its own"


def test_with_every_fact_true_and_the_rest_ticked_it_resolves(responder, recovered):
    incident = working(responder)
    tick_manual_items(incident, responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_services_healthy_says_which_is_not(responder, recovered, settings):
    from detection.facts import services_healthy

    incident = declare(responder)
    assert services_healthy(incident).ok is True
    MonitoredService.objects.create(
        name="cdb_ws", url="http://cdb_ws:8000/health", core=True, state=Health.DEGRADED
    )
    fact = services_healthy(incident)
    assert (fact.ok, fact.detail) == (False, "Not healthy: cdb_ws degraded")
    MonitoredService.objects.filter(name="cdb_ws").update(state=Health.UP, last_checked_at=None)
    assert services_healthy(incident).ok is None  # never checked: nobody can tell


def test_metrics_normal_follows_the_recovery_rules(responder, recovered, settings):
    from detection.facts import metrics_normal

    incident = declare(responder)
    assert metrics_normal(incident).ok is True
    PrometheusRule.objects.filter(name="recovery-latency").update(state=RuleState.FIRING)
    assert metrics_normal(incident).detail == "Above the threshold: recovery-latency firing"
    PrometheusRule.objects.filter(name="recovery-latency").update(state=RuleState.ERROR)
    assert metrics_normal(incident).ok is None
    settings.PROMETHEUS_URL = ""
    assert "not configured" in metrics_normal(incident).detail


def test_no_pending_alerts_until_each_firing_alert_is_resolved(responder):
    from detection.facts import no_pending_alerts

    incident = declare(responder)
    now = timezone.now()

    def signal(status: str, seconds: int) -> None:
        Signal.objects.create(
            source="alertmanager",
            dedup_key=f"fp|{status}|{seconds}",
            group_key="g",
            fingerprint="fp",
            status=status,
            severity=2,
            title="ServiceDown: cdb_ws",
            starts_at=now,
            received_at=now + timedelta(seconds=seconds),
            incident=incident,
        )

    assert no_pending_alerts(incident).detail == "No alert is attached"
    signal("firing", 0)
    assert no_pending_alerts(incident).detail == "Still firing: ServiceDown: cdb_ws"
    signal("resolved", 10)
    assert no_pending_alerts(incident).ok is True
    signal("firing", 20)  # fired again after its resolution
    assert no_pending_alerts(incident).ok is False


def test_the_kill_switch_is_ready_when_readable(responder, ks_files):
    from killswitch.recovery import kill_switch_ready

    incident = declare(responder)
    assert kill_switch_ready(incident).detail == "Production is trading: nothing to deactivate"
    ks_files.production.write_text("state=active\nstate=inactive\n")
    fact = kill_switch_ready(incident)
    assert fact.ok is False and "unevaluable" in fact.detail


# --- The monitoring window ----------------------------------------------------------------------


def resume(incident: Any, lead: Any) -> None:
    ks.killswitch_activate(
        target="production", actor=lead, reason="manual", message="hold", incident=incident
    )
    request = ks.killswitch_request_resume(
        target="production", actor=lead, justification=JUST, incident=incident
    )
    ks.killswitch_approve_resume(request_id=request.pk, actor=make_user(role="lead"), reauthenticated=True)


def test_a_resume_puts_the_incident_in_monitoring_for_its_window(responder, lead, ks_files):
    incident = working(responder, severity=Severity.SEV1)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        resume(incident, lead)
    incident.refresh_from_db()
    assert incident.status == Status.MONITORING
    assert incident.monitoring_until == start + timedelta(minutes=30)  # SEV-1's window, from the data
    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        with pytest.raises(ActionRefused, match="monitoring window runs until"):
            services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
        # A lead resolves earlier with an override and a reason, recorded.
        services.incident_change_status(
            incident=incident, actor=lead, to_status=Status.RESOLVED, override_reason="fills look normal"
        )
    assert incident.events.order_by("-id").first().data["monitoring_override"] == "fills look normal"


def test_after_the_window_the_incident_resolves_without_an_override(responder, recovered):
    incident = working(responder)
    tick_manual_items(incident, responder)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.MONITORING)
    with time_machine.travel(start + timedelta(minutes=30, seconds=1), tick=False):
        # Health polling and the rules went on meanwhile: the facts are fresh.
        MonitoredService.objects.update(last_checked_at=timezone.now())
        PrometheusRule.objects.update(last_evaluated_at=timezone.now())
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)


def test_a_halt_during_monitoring_sends_it_back_to_mitigating(responder, lead, ks_files):
    incident = working(responder, severity=Severity.SEV1)
    resume(incident, lead)
    ks.killswitch_activate(
        target="production", actor=responder, reason="circuit_breaker", message="again", incident=incident
    )
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATING and incident.monitoring_until is None
    row = incident.events.filter(kind="status_changed").order_by("-id").first()
    assert (row.old_value, row.new_value, row.actor) == (Status.MONITORING, Status.MITIGATING, None)
    assert row.message.startswith("re-triggered while monitoring: Halted trading on Production")


def test_a_firing_alert_during_monitoring_sends_it_back_to_mitigating(responder):
    incident = working(responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.MONITORING)
    services.incidents_record_signals(
        entries={incident.pk: [("Resolved (alertmanager: X)", {"status": "resolved"})]}
    )
    incident.refresh_from_db()
    assert incident.status == Status.MONITORING  # a resolution is no re-trigger
    services.incidents_record_signals(
        entries={incident.pk: [("Firing (alertmanager: ServiceDown)", {"status": "firing"})]}
    )
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATING
    assert incident.events.order_by("-id").first().message == (
        "re-triggered while monitoring: Firing (alertmanager: ServiceDown)"
    )


def test_the_page_shows_the_window_and_offers_the_override(client, responder, lead):
    incident = working(responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.MONITORING)
    client.force_login(lead)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'data-testid="monitoring-until"' in page
    assert 'id="override-form"' in page


# --- Reopening, the war room --------------------------------------------------------------------


def test_reopening_needs_a_new_acknowledgement(responder):
    incident = working(responder, severity=Severity.SEV3)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)
    incident.refresh_from_db()
    assert incident.acknowledged_at is None and incident.acknowledged_by is None
    assert incident.ack_due_at == start + timedelta(minutes=240)
    services.incident_acknowledge(incident=incident, actor=responder)
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None


def test_the_war_room_link_is_kept_shown_and_sent(client, responder, settings):
    from comms import rendering

    incident = declare(responder, severity=Severity.SEV1, title="Exchange API down")
    client.force_login(make_user(role="lead"))
    url = reverse("incidents:edit", args=[incident.pk])
    form = {
        "title": incident.title,
        "description": "",
        "affected_components": "",
        "war_room_url": "javascript:alert(1)",
    }
    response = client.post(url, form)
    assert response.status_code == 422 and "Enter a valid URL." in response.content.decode()
    client.post(url, form | {"war_room_url": "https://meet.cdb.example/inc"})
    incident.refresh_from_db()
    assert incident.war_room_url == "https://meet.cdb.example/inc"
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'href="https://meet.cdb.example/inc"' in page and 'data-testid="war-room"' in page
    _, text = rendering.render("initial", incident)
    assert "War room: https://meet.cdb.example/inc" in text


def test_messages_say_the_kill_switch_state(responder, lead, ks_files):
    from comms import rendering

    incident = declare(responder, severity=Severity.SEV1)
    assert "Kill-Switch: Inactive on Production (trading)" in rendering.render("initial", incident)[1]
    ks.killswitch_activate(
        target="production", actor=lead, reason="risk_limit", message="x", incident=incident
    )
    assert "Kill-Switch: Active on Production (risk_limit)" in rendering.render("initial", incident)[1]
