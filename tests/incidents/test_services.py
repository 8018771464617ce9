from __future__ import annotations

from datetime import timedelta
from itertools import product

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents import services
from incidents.lifecycle import TRANSITIONS, ActionRefused
from incidents.models import (
    Checklist,
    ChecklistKind,
    EventKind,
    Incident,
    IncidentType,
    Severity,
    Status,
    TimelineEvent,
)
from tests.incidents.factories import declare, make_user

pytestmark = pytest.mark.django_db


def events(incident: Incident) -> list[TimelineEvent]:
    return list(TimelineEvent.objects.filter(incident=incident).order_by("id"))


def test_declare_copies_checklists_and_writes_one_event(responder):
    incident = declare(
        responder, severity=Severity.SEV1, type_slug="exchange-api-failure", title="Binance 5xx"
    )
    kinds = {
        k: list(incident.checklist_items.filter(kind=k).values_list("text", flat=True)) for k in ChecklistKind
    }
    assert kinds[ChecklistKind.TRIAGE][0] == "Kill-switch status checked"
    assert kinds[ChecklistKind.RUNBOOK][3] == "If exchange down: activate kill switch (EXCHANGE_ERROR)"
    assert len(kinds[ChecklistKind.PRE_RECOVERY]) == 6
    [event] = events(incident)
    assert (event.kind, event.actor, event.new_value) == (EventKind.DECLARED, responder, "SEV-1")
    assert incident.version == event.pk
    assert incident.ack_due_at - incident.detected_at == timedelta(minutes=15)


def test_editing_the_playbook_never_changes_an_existing_incident(responder):
    incident = declare(responder, type_slug="service-crash-loop")
    Checklist.objects.filter(kind=ChecklistKind.TRIAGE).update(items=["Only this"])
    IncidentType.objects.filter(slug="service-crash-loop").update(runbook_steps=["Reboot everything"])
    assert incident.checklist_items.filter(kind=ChecklistKind.TRIAGE).count() == 5
    assert not incident.checklist_items.filter(text="Reboot everything").exists()
    later = declare(responder, type_slug="service-crash-loop")
    assert list(later.checklist_items.filter(kind=ChecklistKind.TRIAGE).values_list("text", flat=True)) == [
        "Only this"
    ]


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_declare_refuses_bad_titles_and_creates_nothing(responder, title):
    with pytest.raises(ActionRefused):
        declare(responder, title=title)
    assert not Incident.objects.exists()


def test_declare_refuses_future_detection(responder):
    with pytest.raises(ActionRefused, match="future"):
        declare(responder, detected_at=timezone.now() + timedelta(hours=1))


def test_acknowledge_twice_records_once(incident, responder):
    services.incident_acknowledge(incident=incident, actor=responder)
    services.incident_acknowledge(incident=incident, actor=make_user(role="responder"))
    incident.refresh_from_db()
    assert incident.acknowledged_by == responder
    assert [e.kind for e in events(incident)] == [EventKind.DECLARED, EventKind.ACKNOWLEDGED]


def _ready(incident: Incident, status: str, actor) -> Incident:
    """Bring a fresh incident into `status` through the services."""
    services.incident_acknowledge(incident=incident, actor=actor)
    services.incident_assign_commander(incident=incident, actor=actor, commander=actor)
    steps: dict[str, list[str]] = {
        Status.TRIAGE: [],
        Status.INVESTIGATING: [Status.INVESTIGATING],
        Status.MITIGATING: [Status.MITIGATING],
        Status.MONITORING: [Status.INVESTIGATING, Status.MONITORING],
        Status.RESOLVED: [Status.RESOLVED],
        Status.CLOSED: [Status.RESOLVED, Status.CLOSED],
    }
    path = steps[status]
    for step in path:
        services.incident_change_status(incident=incident, actor=actor, to_status=step)
    # The monitoring window (playbook 7.4) has its own tests: here it has run out.
    Incident.objects.filter(pk=incident.pk, monitoring_until__isnull=False).update(
        monitoring_until=timezone.now() - timedelta(seconds=1)
    )
    incident.refresh_from_db()
    assert incident.status == status
    return incident


@pytest.mark.parametrize(("from_status", "to_status"), list(product(Status.values, Status.values)))
def test_every_transition_pair_follows_the_table(responder, from_status, to_status):
    incident = _ready(declare(responder, severity=Severity.SEV3), from_status, responder)
    before = events(incident)
    if from_status == to_status:
        services.incident_change_status(incident=incident, actor=responder, to_status=to_status)
        assert events(incident) == before  # nothing changes, nothing recorded
    elif to_status in TRANSITIONS[from_status]:
        services.incident_change_status(incident=incident, actor=responder, to_status=to_status)
        incident.refresh_from_db()
        assert incident.status == to_status
        [new] = events(incident)[len(before) :]
        assert (new.kind, new.old_value, new.new_value, new.actor) == (
            EventKind.STATUS_CHANGED,
            from_status,
            to_status,
            responder,
        )
        assert incident.version == new.pk
    else:
        with pytest.raises(ActionRefused):
            services.incident_change_status(incident=incident, actor=responder, to_status=to_status)
        incident.refresh_from_db()
        assert incident.status == from_status
        assert events(incident) == before


def test_leaving_triage_needs_acknowledgement(incident, responder):
    with pytest.raises(ActionRefused, match="Acknowledge"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)


@pytest.mark.parametrize("severity", [Severity.SEV1, Severity.SEV2])
def test_sev1_and_sev2_need_a_commander_before_leaving_triage(responder, severity):
    incident = declare(responder, severity=severity)
    services.incident_acknowledge(incident=incident, actor=responder)
    with pytest.raises(ActionRefused, match="commander"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)
    services.incident_assign_commander(incident=incident, actor=responder, commander=responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)


def test_sev3_leaves_triage_without_commander(incident, responder):
    services.incident_acknowledge(incident=incident, actor=responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)


def test_resolving_sev2_needs_pre_recovery_or_a_recorded_override(responder):
    incident = _ready(declare(responder, severity=Severity.SEV2), Status.INVESTIGATING, responder)
    with pytest.raises(ActionRefused, match="pre-recovery"):
        services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    with pytest.raises(ActionRefused, match="pre-recovery"):
        services.incident_change_status(
            incident=incident, actor=responder, to_status=Status.RESOLVED, override_reason="   "
        )
    services.incident_change_status(
        incident=incident,
        actor=responder,
        to_status=Status.RESOLVED,
        override_reason="Exchange back, fix later",
    )
    last = events(incident)[-1]
    assert last.data == {"pre_recovery_override": "Exchange back, fix later"}
    assert last.message == "Exchange back, fix later"


def test_resolving_sev2_with_complete_pre_recovery(responder, recovered):
    incident = _ready(declare(responder, severity=Severity.SEV2), Status.MONITORING, responder)
    for item in incident.checklist_items.filter(kind=ChecklistKind.PRE_RECOVERY, fact_name=""):
        services.incident_set_checklist_item(incident=incident, actor=responder, item_id=item.pk, done=True)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.RESOLVED)
    incident.refresh_from_db()
    assert incident.resolved_at is not None
    assert events(incident)[-1].data == {}


def test_a_stale_click_is_refused_and_a_double_click_changes_nothing(responder):
    incident = _ready(declare(responder), Status.INVESTIGATING, responder)
    services.incident_change_status(
        incident=incident, actor=responder, to_status=Status.MITIGATING, from_status=Status.INVESTIGATING
    )
    n = len(events(incident))
    # The same click again (the page still said "investigating"): no change, no error.
    services.incident_change_status(
        incident=incident, actor=responder, to_status=Status.MITIGATING, from_status=Status.INVESTIGATING
    )
    # A different move decided on the stale page: refused with a clear message.
    with pytest.raises(ActionRefused, match="now Mitigating"):
        services.incident_change_status(
            incident=incident, actor=responder, to_status=Status.MONITORING, from_status=Status.INVESTIGATING
        )
    assert len(events(incident)) == n


def test_reopening_clears_resolution(responder):
    incident = _ready(declare(responder), Status.RESOLVED, responder)
    services.incident_change_status(incident=incident, actor=responder, to_status=Status.INVESTIGATING)
    incident.refresh_from_db()
    assert incident.resolved_at is None
    assert events(incident)[-1].data == {"reopened": True}


def test_closed_incidents_are_read_only(responder):
    incident = _ready(declare(responder), Status.CLOSED, responder)
    for call in (
        lambda: services.incident_add_note(incident=incident, actor=responder, text="late"),
        lambda: services.incident_change_severity(incident=incident, actor=responder, severity=1, reason="x"),
        lambda: services.incident_assign_commander(incident=incident, actor=responder, commander=responder),
    ):
        with pytest.raises(ActionRefused, match="read-only"):
            call()


def test_change_severity_needs_reason_and_moves_the_deadline(incident, responder):
    with pytest.raises(ActionRefused, match="Reason"):
        services.incident_change_severity(incident=incident, actor=responder, severity=1, reason=" ")
    services.incident_change_severity(incident=incident, actor=responder, severity=1, reason="Orders failing")
    incident.refresh_from_db()
    assert incident.ack_due_at - incident.detected_at == timedelta(minutes=15)
    last = events(incident)[-1]
    assert (last.kind, last.old_value, last.new_value, last.message) == (
        EventKind.SEVERITY_CHANGED,
        "SEV-3",
        "SEV-1",
        "Orders failing",
    )
    services.incident_change_severity(incident=incident, actor=responder, severity=1, reason="again")
    assert events(incident)[-1] == last


def test_commander_gets_object_permission_and_the_previous_loses_it(incident, lead):
    first = make_user(role="responder")
    second = make_user(role="responder")
    services.incident_assign_commander(incident=incident, actor=lead, commander=first)
    assert first.has_perm("incidents.change_incident", incident)
    assert not first.has_perm("incidents.change_incident")
    services.incident_assign_commander(incident=incident, actor=lead, commander=second)
    first = type(first).objects.get(pk=first.pk)  # fresh permission cache
    assert not first.has_perm("incidents.change_incident", incident)
    assert second.has_perm("incidents.change_incident", incident)
    last = events(incident)[-1]
    assert (last.old_value, last.new_value) == (first.username, second.username)


def test_a_viewer_cannot_be_commander(incident, lead, viewer):
    with pytest.raises(ActionRefused, match="responder"):
        services.incident_assign_commander(incident=incident, actor=lead, commander=viewer)


def test_checklist_items_are_set_not_toggled(incident, responder):
    item = incident.checklist_items.first()
    for _ in range(2):
        services.incident_set_checklist_item(incident=incident, actor=responder, item_id=item.pk, done=True)
    assert [e.kind for e in events(incident)].count(EventKind.CHECKLIST_ITEM) == 1
    services.incident_set_checklist_item(incident=incident, actor=responder, item_id=item.pk, done=False)
    item.refresh_from_db()
    assert item.done_at is None
    assert [e.new_value for e in events(incident) if e.kind == EventKind.CHECKLIST_ITEM] == ["done", "open"]


def test_checklist_item_of_another_incident_is_refused(incident, responder):
    other = declare(responder)
    with pytest.raises(ActionRefused):
        services.incident_set_checklist_item(
            incident=incident, actor=responder, item_id=other.checklist_items.first().pk, done=True
        )


def test_edit_records_changed_fields_only(incident, lead):
    services.incident_edit(
        incident=incident,
        actor=lead,
        title=incident.title,
        description="new",
        affected_components=["cdb_risk"],
    )
    last = events(incident)[-1]
    assert last.kind == EventKind.EDITED
    assert set(last.data["changes"]) == {"description", "affected_components"}
    n = len(events(incident))
    services.incident_edit(
        incident=incident,
        actor=lead,
        title=incident.title,
        description="new",
        affected_components=["cdb_risk"],
    )
    assert len(events(incident)) == n


def test_note_is_validated(incident, responder):
    with pytest.raises(ActionRefused):
        services.incident_add_note(incident=incident, actor=responder, text="x" * 10_001)
    services.incident_add_note(incident=incident, actor=responder, text="  found it  ")
    assert events(incident)[-1].message == "found it"


@pytest.mark.django_db(transaction=True)
def test_timeline_is_written_only_inside_a_transaction(incident):
    from incidents import timeline

    with pytest.raises(RuntimeError):
        timeline.record(incident, kind=EventKind.NOTE, message="outside")


class TestSLA:
    def test_breach_is_recorded_once_by_the_sweep(self, responder):
        with time_machine.travel("2026-01-01 03:00:00Z", tick=False):
            incident = declare(responder, severity=Severity.SEV1)
        with time_machine.travel("2026-01-01 03:14:59Z", tick=False):
            assert services.sla_breaches_sweep() == 0
        with time_machine.travel("2026-01-01 03:15:01Z", tick=False):
            assert services.sla_breaches_sweep() == 1
            assert services.sla_breaches_sweep() == 0
        breaches = [e for e in events(incident) if e.kind == EventKind.SLA_BREACHED]
        assert len(breaches) == 1
        assert breaches[0].data == {"overdue_seconds": 1}

    def test_a_late_acknowledgement_marks_the_breach_once(self, responder):
        with time_machine.travel("2026-01-01 03:00:00Z", tick=False):
            incident = declare(responder, severity=Severity.SEV2)
        with time_machine.travel("2026-01-01 04:01:00Z", tick=False):
            services.incident_acknowledge(incident=incident, actor=responder)
            assert services.sla_breaches_sweep() == 0
        ack = events(incident)[-1]
        assert ack.data == {"response_seconds": 3660, "sla_breached": True}

    def test_acknowledged_in_time_is_never_a_breach(self, responder):
        with time_machine.travel("2026-01-01 03:00:00Z", tick=False):
            incident = declare(responder, severity=Severity.SEV1)
        with time_machine.travel("2026-01-01 03:10:00Z", tick=False):
            services.incident_acknowledge(incident=incident, actor=responder)
        with time_machine.travel("2026-01-01 05:00:00Z", tick=False):
            assert services.sla_breaches_sweep() == 0
        incident.refresh_from_db()
        assert incident.sla_breached_at is None

    @pytest.mark.parametrize(("severity", "minutes"), [(1, 15), (2, 60), (3, 240), (4, 1440)])
    def test_deadline_follows_the_playbook(self, responder, severity, minutes):
        incident = declare(responder, severity=severity)
        assert incident.ack_due_at - incident.detected_at == timedelta(minutes=minutes)


def test_declaring_several_at_once_opens_what_one_by_one_would(django_assert_max_num_queries):
    """incidents_declare (alert routing's bursts) against incident_declare, field by field."""

    other = IncidentType.objects.get(slug="other")
    detected = timezone.now() - timedelta(minutes=3)
    entries = [("Firing (alertmanager: A)", {"status": "firing"}), ("Firing (alertmanager: B)", {"n": 2})]

    def declaration(severity: int) -> services.Declaration:
        return services.Declaration(
            incident_type=other,
            title=f"ServiceDown {severity}",
            severity=severity,
            description="down",
            affected_components=["cdb_risk"],
            detected_at=detected,
            signals=entries,
        )

    # Queries do not grow with the number of incidents (the timeline's listeners included).
    with CaptureQueriesContext(connection) as three:
        many = services.incidents_declare(declarations=[declaration(s) for s in (1, 3, 4)])
    with CaptureQueriesContext(connection) as thirty:
        services.incidents_declare(declarations=[declaration(s % 4 + 1) for s in range(30)])
    assert len(thirty) == len(three) <= 25
    single = services.incident_declare(
        actor=None,
        incident_type=other,
        title="ServiceDown 3",
        severity=3,
        description="down",
        affected_components=["cdb_risk"],
        detected_at=detected,
        signals=entries,
    )

    def shape(incident: Incident) -> tuple[object, ...]:
        incident.refresh_from_db()
        return (
            incident.severity,
            incident.status,
            incident.ack_due_at - incident.detected_at,
            incident.affected_components,
            list(
                incident.checklist_items.order_by("kind", "position").values_list("kind", "position", "text")
            ),
            list(incident.events.order_by("id").values_list("kind", "message", "data")),
            incident.version == incident.events.order_by("-id").values_list("id", flat=True)[0],
        )

    assert [i.severity for i in many] == [1, 3, 4]
    assert shape(many[1]) == shape(single)
    assert shape(many[0])[2] == timedelta(minutes=15) and shape(many[2])[2] == timedelta(hours=24)
