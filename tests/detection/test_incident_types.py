"""Detected incidents open with the playbook type their source names: a health check's or a rule's
definition, an alert's `incident_type` label, or the type whose alert names include the alertname.
A crash loop opens as "Service crash loop" with runbook 6.2, not as "Other"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from detection.models import Health, MonitoredService, PrometheusRule, Signal
from detection.services import signals_route
from incidents.models import ChecklistKind, Incident, IncidentType
from tests.detection.test_health import DOWN_AFTER, Checks
from tests.detection.test_prometheus import FakePrometheus, allowed, evaluate, vector  # noqa: F401 (autouse)
from tests.detection.test_webhooks import alert, am_payload, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _tokens(settings: Any) -> None:
    settings.WEBHOOK_TOKENS = {"alertmanager": "am-token-0123456789", "grafana": ""}


def runbook(incident: Incident) -> list[str]:
    return list(
        incident.checklist_items.filter(kind=ChecklistKind.RUNBOOK)
        .order_by("position")
        .values_list("text", flat=True)
    )


def itype(slug: str) -> IncidentType:
    return IncidentType.objects.get(slug=slug)


# --- Health checks -------------------------------------------------------------------------------


def test_a_crash_looping_service_opens_a_service_crash_loop_with_its_runbook() -> None:
    call_command("load_services", verbosity=0)
    MonitoredService.objects.update(enabled=True)
    service = MonitoredService.objects.get(name="cdb_execution")
    assert service.incident_type == itype("service-crash-loop")
    Checks()(service, *[Health.DOWN] * DOWN_AFTER)
    incident = Incident.objects.get()
    assert incident.incident_type.name == "Service crash loop"
    assert incident.incident_type.playbook_section == "6.2"
    assert runbook(incident) == itype("service-crash-loop").runbook_steps
    assert Signal.objects.get().incident_type == "service-crash-loop"


def test_a_services_type_edited_in_admin_is_the_one_its_incidents_open_with(client: Any) -> None:
    from tests.incidents.factories import make_user

    call_command("load_services", verbosity=0)
    service = MonitoredService.objects.get(name="cdb_market")
    client.force_login(make_user(role="admin", is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:detection_monitoredservice_change", args=[service.pk]))
    assert 'name="incident_type"' in page.content.decode()
    MonitoredService.objects.filter(pk=service.pk).update(
        incident_type=itype("exchange-api-failure"), enabled=True
    )
    service.refresh_from_db()
    Checks()(service, *[Health.DOWN] * DOWN_AFTER)
    assert Incident.objects.get().incident_type.slug == "exchange-api-failure"
    # Reloading the file keeps the edit, as it keeps the other admin edits.
    call_command("load_services", verbosity=0)
    assert MonitoredService.objects.get(pk=service.pk).incident_type == itype("exchange-api-failure")


def test_the_services_file_names_a_known_type_or_is_refused(tmp_path: Any) -> None:
    from detection.health import ServicesFileError, services_load

    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - {name: x, port: 1, path: /h, check: http_json, incident_type: nope}\n")
    with pytest.raises(ServicesFileError, match="unknown incident type 'nope'"):
        services_load(path=path)


# --- Prometheus rules ----------------------------------------------------------------------------


def test_the_kill_switch_rule_opens_kill_switch_activated(settings: Any) -> None:
    from django.utils import timezone

    call_command("load_prometheus_rules", verbosity=0)
    rules = {r.name: r for r in PrometheusRule.objects.select_related("incident_type")}
    assert rules["kill-switch-active"].incident_type == itype("kill-switch-activated")
    assert rules["circuit-breaker-active"].incident_type == itype("kill-switch-activated")
    assert rules["core-service-down"].incident_type == itype("service-crash-loop")
    assert rules["order-rejection-rate"].incident_type is None
    PrometheusRule.objects.exclude(name="kill-switch-active").update(enabled=False)
    settings.PROMETHEUS_URL = "http://prometheus.test:9090"
    fake = FakePrometheus()
    fake.answer("risk_kill_switch_active", vector(({"job": "cdb_risk"}, "1")))
    evaluate(fake, timezone.now() - timedelta(minutes=1))
    incident = Incident.objects.get()
    assert incident.incident_type.name == "Kill switch activated"
    assert runbook(incident)[1].startswith("Check reason")


def test_a_rule_without_a_type_opens_other(settings: Any) -> None:
    from django.utils import timezone

    from tests.detection.test_prometheus import make_rule

    make_rule("odd", expr="odd_metric")
    settings.PROMETHEUS_URL = "http://prometheus.test:9090"
    fake = FakePrometheus()
    fake.answer("odd_metric", vector(({"job": "x"}, "1")))
    evaluate(fake, timezone.now() - timedelta(minutes=1))
    assert Incident.objects.get().incident_type.slug == "other"


# --- Alert labels and the alert-name mapping -----------------------------------------------------


def test_an_incident_type_label_chooses_the_type(client: Any) -> None:
    post(client, am_payload(alert(name="ExchangeDown", labels={"incident_type": "exchange-api-failure"})))
    signals_route()
    assert Incident.objects.get().incident_type.slug == "exchange-api-failure"


def test_an_alertname_listed_on_a_type_chooses_it(client: Any) -> None:
    assert "ContainerRestarting" in itype("service-crash-loop").alert_names
    post(client, am_payload(alert(name="ContainerRestarting", service="cdb_signal")))
    signals_route()
    assert Incident.objects.get().incident_type.slug == "service-crash-loop"


def test_an_unknown_label_or_name_opens_other(client: Any) -> None:
    post(client, am_payload(alert(name="SomethingNew", labels={"incident_type": "no-such-type"})))
    signals_route()
    assert Incident.objects.get().incident_type.slug == "other"


def test_one_batch_opens_each_incident_with_its_own_type_in_the_same_number_of_queries(
    client: Any, django_assert_max_num_queries: Any
) -> None:
    def burst(tag: str, n: int) -> None:
        names = ["ContainerRestarting", "SomethingNew", "ExchangeDown"]
        alerts = [
            alert(
                name=names[i % 3],
                service=f"cdb_{tag}{i}",
                fp=f"{tag}{i}",
                labels={"incident_type": "exchange-api-failure"} if i % 3 == 2 else {},
            )
            for i in range(n)
        ]
        post(client, am_payload(*alerts))

    burst("a", 3)
    with django_assert_max_num_queries(40) as small:
        assert signals_route() == 3
    queries = len(small.captured_queries)  # read now: the next request resets Django's query log
    burst("b", 30)
    with django_assert_max_num_queries(queries):
        assert signals_route() == 30
    expected = ["service-crash-loop", "other", "exchange-api-failure"]
    opened = {i.affected_components[0]: i.incident_type.slug for i in Incident.objects.all()}
    assert len(opened) == 33
    for component, slug in opened.items():
        assert slug == expected[int(component[5:]) % 3], component
