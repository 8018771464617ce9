from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection
from django.urls import reverse

from detection.models import Signal
from detection.services import signals_route
from incidents.models import EventKind, Incident, Status, TimelineEvent

pytestmark = pytest.mark.django_db
TOKEN = "am-token-0123456789"
GRAFANA_TOKEN = "gf-token-0123456789"
AM = reverse("detection:alertmanager")
GF = reverse("detection:grafana")


@pytest.fixture(autouse=True)
def _tokens(settings):
    settings.WEBHOOK_TOKENS = {"alertmanager": TOKEN, "grafana": GRAFANA_TOKEN}


def alert(name="ServiceDown", service="cdb_risk", severity="critical", fp="a1b2c3", status="firing", **extra):
    labels = {"alertname": name, "severity": severity, "job": service, "instance": f"{service}:8002"}
    if severity is None:
        labels.pop("severity")
    return {
        "status": status,
        "labels": labels | extra.pop("labels", {}),
        "annotations": {"summary": f"Service {service} is down", "description": "down for more than 1 minute"}
        | extra.pop("annotations", {}),
        "startsAt": "2026-11-26T21:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T21:05:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fp,
        **extra,
    }


def am_payload(*alerts, status="firing"):
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ServiceDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "critical-receiver",
        "groupLabels": {"alertname": "ServiceDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def post(client, payload, *, url=AM, token=TOKEN, content_type="application/json"):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.post(url, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}")


def deliver(client, payload, **kwargs):
    """Post, then route as the woken worker does (the worker itself: test_a_worker_routes_...)."""
    response = post(client, payload, **kwargs)
    signals_route()
    return response


class TestProtocol:
    def test_other_methods_are_405(self, client):
        response = client.get(AM)
        assert response.status_code == 405 and response["Allow"] == "POST"

    @pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + TOKEN, f"Bearer {TOKEN}x"])
    def test_a_missing_or_wrong_token_is_401(self, client, header):
        kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
        response = client.post(AM, json.dumps(am_payload(alert())), content_type="application/json", **kwargs)
        assert response.status_code == 401
        assert not Signal.objects.exists()

    @pytest.mark.parametrize(
        "header",
        ["Bearer tökén", f"Bearer {TOKEN}é", "Bearer \u20ac\u20ac", "Bëarer " + TOKEN, "Bearer \xff"],
    )
    def test_a_non_ascii_authorization_header_is_401(self, client, header):
        kwargs = {"HTTP_AUTHORIZATION": header}
        response = client.post(AM, json.dumps(am_payload(alert())), content_type="application/json", **kwargs)
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
        assert not Signal.objects.exists()

    def test_each_source_has_its_own_token(self, client):
        assert post(client, am_payload(alert()), token=GRAFANA_TOKEN).status_code == 401

    def test_no_configured_token_accepts_nothing(self, client, settings):
        settings.WEBHOOK_TOKENS = {"alertmanager": "", "grafana": ""}
        assert post(client, am_payload(alert()), token="").status_code == 401

    def test_wrong_content_type_is_415(self, client):
        response = post(client, json.dumps(am_payload(alert())), content_type="text/plain")
        assert response.status_code == 415 and "application/json" in response.json()["error"]

    def test_a_large_body_is_413(self, client, settings):
        settings.WEBHOOK_MAX_BYTES = 1000
        response = post(client, am_payload(alert(annotations={"description": "x" * 2000})))
        assert response.status_code == 413

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ("{not json", "Body is not JSON"),
            ([], "body: expected an object"),
            ({"version": "3", "alerts": []}, "version: expected '4'"),
            (am_payload(), "alerts: expected a non-empty list"),
            (am_payload(alert(status="pending")), "alerts[0].status: 'pending' is neither"),
            (
                am_payload(alert(startsAt="yesterday")),
                "alerts[0].startsAt: 'yesterday' is not an RFC 3339 time",
            ),
            (am_payload(alert(startsAt="2026-11-26T21:00:00")), "is not an RFC 3339 time with a zone"),
            (am_payload(alert(fingerprint="")), "alerts[0].fingerprint: must not be empty"),
            (am_payload(alert(labels={"alertname": ""})), "alerts[0].labels.alertname: missing"),
            (
                am_payload(alert(), alert(labels={"severity": 5})),
                "alerts[1].labels.severity: expected a string",
            ),
        ],
    )
    def test_bad_input_is_a_400_naming_the_problem(self, client, payload, message):
        response = post(client, payload)
        assert response.status_code == 400
        assert message in response.json()["error"]
        assert not Signal.objects.exists() and not Incident.objects.exists()


class TestAlerts:
    def test_the_answer_comes_once_stored_and_routing_follows(self, client):
        response = post(client, am_payload(alert()))
        assert response.status_code == 200
        assert response.json() == {"received": 1, "new": 1, "duplicates": 0}
        waiting = Signal.objects.get()
        assert waiting.routed_at is None and waiting.incident is None and not Incident.objects.exists()
        assert signals_route() == 1
        assert signals_route() == 0  # routed once: a second run finds nothing
        signal = Signal.objects.get()
        assert signal.routed_at is not None and signal.incident == Incident.objects.get()

    def test_a_firing_alert_opens_an_incident(self, client):
        response = deliver(client, am_payload(alert()))
        assert response.status_code == 200
        [incident] = Incident.objects.all()
        assert incident.severity == 1 and incident.status == Status.TRIAGE and incident.declared_by is None
        assert incident.title == "ServiceDown: Service cdb_risk is down"
        assert incident.affected_components == ["cdb_risk"]
        assert incident.detected_at == datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
        signal = Signal.objects.get()
        assert signal.incident == incident and signal.links == ["http://prometheus:9090/graph?g0.expr=up"]

    def test_a_duplicate_delivery_changes_nothing(self, client):
        deliver(client, am_payload(alert()))
        events = TimelineEvent.objects.count()
        response = deliver(client, am_payload(alert()))
        assert response.json()["duplicates"] == 1 and response.json()["new"] == 0
        assert Signal.objects.count() == 1 and Incident.objects.count() == 1
        assert TimelineEvent.objects.count() == events

    def test_alerts_group_by_alertname_and_service(self, client):
        deliver(
            client,
            am_payload(
                alert(fp="1"), alert(fp="2", labels={"instance": "b"}), alert(service="cdb_market", fp="3")
            ),
        )
        assert Incident.objects.count() == 2
        assert Signal.objects.filter(incident=Signal.objects.get(fingerprint="1").incident).count() == 2

    def test_grouping_is_configurable(self, client, settings):
        settings.ALERT_GROUP_BY = ["alertname"]
        deliver(client, am_payload(alert(fp="1"), alert(service="cdb_market", fp="2")))
        assert Incident.objects.count() == 1

    def test_resolved_goes_on_the_timeline_and_never_closes(self, client):
        deliver(client, am_payload(alert()))
        deliver(client, am_payload(alert(status="resolved"), status="resolved"))
        incident = Incident.objects.get()
        assert incident.status == Status.TRIAGE
        last = incident.events.order_by("-id").first()
        assert last.kind == EventKind.SIGNAL and last.message.startswith("Resolved")

    @pytest.mark.parametrize(
        ("label", "severity"),
        [("critical", 1), ("high", 2), ("warning", 3), ("info", 4), ("CRITICAL", 1), ("page", 1), (None, 1)],
    )
    def test_severity_from_labels_fails_loud(self, client, label, severity):
        deliver(client, am_payload(alert(severity=label)))
        assert Incident.objects.get().severity == severity

    def test_a_more_severe_alert_raises_the_incident(self, client):
        deliver(client, am_payload(alert(severity="warning", fp="w")))
        deliver(client, am_payload(alert(severity="critical", fp="c")))
        incident = Incident.objects.get()
        assert incident.severity == 1
        assert incident.events.filter(kind=EventKind.SEVERITY_CHANGED).count() == 1

    def test_a_new_firing_after_resolution_opens_a_new_incident(self, client):
        from incidents import services

        deliver(client, am_payload(alert()))
        first = Incident.objects.get()
        from tests.incidents.factories import make_user

        user = make_user(role="lead")
        services.incident_acknowledge(incident=first, actor=user)
        services.incident_assign_commander(incident=first, actor=user, commander=user)
        services.incident_change_status(
            incident=first, actor=user, to_status=Status.RESOLVED, override_reason="ok"
        )
        again = alert(startsAt="2026-11-26T22:00:00Z")
        deliver(client, am_payload(again))
        assert Incident.objects.count() == 2

    def test_links_are_only_http(self, client):
        hostile = alert(
            generatorURL="javascript:alert(1)",
            annotations={
                "runbook_url": "https://runbooks.example/ServiceDown",
                "summary": "<script>x</script>",
            },
        )
        deliver(client, am_payload(hostile))
        assert Signal.objects.get().links == ["https://runbooks.example/ServiceDown"]

    def test_grafana_alerts(self, client):
        payload = {
            "receiver": "cdb",
            "status": "firing",
            "orgId": 1,
            "version": "1",
            "groupKey": "k",
            "truncatedAlerts": 0,
            "title": "[FIRING:1] CDB - Circuit Breaker Activated",
            "state": "alerting",
            "message": "",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://grafana:3000/",
            "alerts": [
                alert(
                    name="CDB - Circuit Breaker Activated",
                    service="cdb_risk",
                    severity="critical",
                    fp="g1",
                    dashboardURL="http://grafana:3000/d/x",
                    panelURL="",
                    silenceURL="ftp://nope",
                    valueString="A=1",
                )
            ],
        }
        response = deliver(client, payload, url=GF, token=GRAFANA_TOKEN)
        assert response.status_code == 200
        signal = Signal.objects.get()
        assert signal.source == "grafana" and signal.incident.severity == 1
        assert signal.links == ["http://prometheus:9090/graph?g0.expr=up", "http://grafana:3000/d/x"]


def grafana_payload(fp="g1", **alert_fields):
    return {
        "receiver": "cdb",
        "status": "firing",
        "orgId": 1,
        "version": "1",
        "groupKey": "k",
        "alerts": [alert(name="CDB - Circuit Breaker Activated", fp=fp, **alert_fields)],
    }


class TestGrafanaFields:
    """Grafana's own fields are checked like every other: a value PostgreSQL cannot store is a 400 that
    names the field, never a 503 that Grafana would retry for ever."""

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("dashboardURL", "http://grafana:3000/d/\x00", "alerts[0].dashboardURL: contains a NUL"),
            ("silenceURL", "http://grafana:3000/\ud800", "alerts[0].silenceURL: contains a lone UTF-16"),
            ("panelURL", {"href": "http://grafana:3000/"}, "alerts[0].panelURL: expected a string, got dict"),
            ("panelURL", 7, "alerts[0].panelURL: expected a string, got int"),
            ("dashboardURL", ["http://grafana:3000/"], "alerts[0].dashboardURL: expected a string, got list"),
            ("silenceURL", "http://g/" + "x" * 2000, "alerts[0].silenceURL: longer than 2000 characters"),
        ],
    )
    def test_a_field_postgresql_cannot_store_is_a_400_naming_it(self, client, field, value, message):
        response = post(client, grafana_payload(**{field: value}), url=GF, token=GRAFANA_TOKEN)
        assert response.status_code == 400, response.content
        assert message in response.json()["error"]
        assert not Signal.objects.exists()

    @pytest.mark.parametrize("field", ["dashboardURL", "panelURL", "silenceURL"])
    def test_an_empty_or_missing_link_is_fine(self, client, field):
        assert post(client, grafana_payload(**{field: ""}), url=GF, token=GRAFANA_TOKEN).status_code == 200
        assert post(client, grafana_payload(fp="g2"), url=GF, token=GRAFANA_TOKEN).status_code == 200
        assert Signal.objects.count() == 2

    @pytest.mark.parametrize("url", ["http://[::1", "http://[", "https://]x[/", "http://a:99999999/"])
    @pytest.mark.parametrize("field", ["generatorURL", "dashboardURL"])
    def test_a_link_that_is_not_a_url_is_dropped_and_the_alert_kept(self, client, field, url):
        response = post(client, grafana_payload(**{field: url}), url=GF, token=GRAFANA_TOKEN)
        assert response.status_code == 200, response.content
        assert url not in Signal.objects.get().links
        assert signals_route() == 1


@pytest.mark.django_db(transaction=True)
def test_when_the_database_refuses_the_write_the_answer_is_503_and_a_retry_arrives_once(client, settings):
    """Another session holds the signals table locked: the webhook gives up after its lock timeout with
    a 503 (Alertmanager retries 5xx), and the retry, once the table is free, stores the alert once."""
    settings.WEBHOOK_TOKENS = {"alertmanager": TOKEN, "grafana": GRAFANA_TOKEN}
    params = connection.get_connection_params()
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with (
            psycopg.connect(
                dbname=params["dbname"],
                user=params.get("user"),
                host=params.get("host"),
                port=params.get("port"),
            ) as other,
            other.transaction(),
        ):
            other.execute("LOCK TABLE detection_signal IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        response = post(client, am_payload(alert()))
        assert response.status_code == 503 and response["Retry-After"] == "5"
    finally:
        release.set()
        holder.join(10)
    assert not Signal.objects.exists() and not Incident.objects.exists()
    for _ in range(2):  # the retry, and Alertmanager's HA peer sending the same alert
        assert deliver(client, am_payload(alert())).status_code == 200
    assert Signal.objects.count() == 1 and Incident.objects.count() == 1
    assert timedelta(0) <= datetime.now(UTC) - Signal.objects.get().received_at < timedelta(minutes=1)
