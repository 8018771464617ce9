"""Where the console's own requests go: health checks and Prometheus queries reach only the hosts in
DETECTION_ALLOWED_HOSTS (checked in admin and again where the request is made), follow no redirect and
wait at most DETECTION_MAX_TIMEOUT; what a checked service answered is shown to leads and above only."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from detection import outbound
from detection.health import check_one, health_record, poll_all
from detection.models import CheckKind, Health, MonitoredService
from detection.prometheus import Unreachable, query, rules_evaluate
from incidents.models import Incident, TimelineEvent
from tests.detection.test_health import make_service
from tests.incidents.factories import make_user
from tests.standins.health import HealthStandIn, Mode

pytestmark = pytest.mark.django_db

NOT_ALLOWED = "not in DETECTION_ALLOWED_HOSTS"
Standins = Callable[..., HealthStandIn]


# --- The allow-list ------------------------------------------------------------------------------


def test_by_default_only_cdbs_containers_prometheus_and_loopback_are_allowed(settings: Any) -> None:
    settings.DETECTION_ALLOWED_HOSTS = None
    for host in ("cdb_risk", "cdb_ws", "cdb_postgres", "CDB_Redis", "cdb_prometheus", "cdb_grafana"):
        assert outbound.host_allowed(host), host
    for host in ("localhost", "127.0.0.1", "127.0.0.53", "::1"):
        assert outbound.host_allowed(host), host
    for host in (
        "169.254.169.254",  # a cloud's metadata service
        "metadata.google.internal",
        "10.0.0.5",
        "0.0.0.0",  # noqa: S104  (reaches this host's services on Linux)
        "cdb_risk.evil.example",
        "example.com",
        "",
    ):
        assert not outbound.host_allowed(host), host


def test_the_allow_list_takes_names_addresses_and_networks(settings: Any) -> None:
    settings.DETECTION_ALLOWED_HOSTS = ["risk.internal", "10.1.2.3", "192.168.0.0/16", "fd00::/8"]
    for host in ("risk.internal", "RISK.internal", "10.1.2.3", "192.168.7.9", "fd00::5"):
        assert outbound.host_allowed(host), host
    for host in ("cdb_risk", "localhost", "127.0.0.1", "10.1.2.4", "risk.internal.evil"):
        assert not outbound.host_allowed(host), host


# --- Health checks --------------------------------------------------------------------------------


def test_a_health_check_never_reaches_a_host_outside_the_allow_list(
    settings: Any, standins: Standins
) -> None:
    standin = standins("risk")
    service = make_service("cdb_risk", standin.url)
    settings.DETECTION_ALLOWED_HOSTS = ["cdb_risk"]
    result = check_one(service)
    assert result.state == Health.DOWN and NOT_ALLOWED in result.detail, result.detail
    assert standin.hits == 0
    settings.DETECTION_ALLOWED_HOSTS = ["cdb_risk", "127.0.0.1"]
    assert check_one(service).state == Health.UP and standin.hits == 1


def test_a_tcp_check_never_connects_outside_the_allow_list(settings: Any) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        service = make_service("cdb_redis", f"redis://127.0.0.1:{port}", check_kind=CheckKind.TCP)
        settings.DETECTION_ALLOWED_HOSTS = ["cdb_redis"]
        result = check_one(service)
        assert result.state == Health.DOWN and NOT_ALLOWED in result.detail, result.detail
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_a_redirect_is_not_followed(standins: Standins) -> None:
    target = standins("risk")
    first = standins("execution")
    first.set_answer(302, b"", headers=(("Location", target.url),))
    result = check_one(make_service("cdb_execution", first.url))
    assert result.state == Health.DOWN and target.hits == 0


def test_a_timeout_above_the_bound_is_capped_where_the_check_is_made(
    settings: Any, standins: Standins
) -> None:
    slow = standins("risk", Mode.SLOW, delay=5)
    service = make_service("cdb_risk", slow.url)
    MonitoredService.objects.filter(pk=service.pk).update(timeout=3600)  # past the admin's checks
    service.refresh_from_db()
    settings.DETECTION_MAX_TIMEOUT = 0.5
    result = check_one(service)
    assert (result.state, result.detail) == (Health.DOWN, "no answer within 0.5 s")


# --- Prometheus -----------------------------------------------------------------------------------


class Recorder:
    """A Prometheus API answering `vector(1)`, recording each request it gets."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        data = {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}
        return httpx.Response(200, json={"status": "success", "data": data})

    @property
    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def test_prometheus_is_queried_only_on_an_allowed_host(settings: Any) -> None:
    recorder = Recorder()
    settings.DETECTION_ALLOWED_HOSTS = ["cdb_prometheus"]
    with pytest.raises(Unreachable, match=NOT_ALLOWED), recorder.client as client:
        query("http://prometheus.test:9090", "vector(1)", client=client)
    assert recorder.requests == []
    with recorder.client as client:
        assert query("http://cdb_prometheus:9090", "vector(1)", client=client) == [({}, 1.0)]


def test_a_prometheus_on_a_host_outside_the_allow_list_is_monitoring_blind_and_says_why(
    settings: Any,
) -> None:
    settings.PROMETHEUS_URL = "http://169.254.169.254:9090"
    recorder = Recorder()
    with recorder.client as client:
        rules_evaluate(client=client)
    assert recorder.requests == []
    blind = Incident.objects.get(title__startswith="Monitoring blind")
    assert NOT_ALLOWED in blind.description


def test_the_prometheus_timeout_is_capped_where_the_query_is_made(settings: Any) -> None:
    recorder = Recorder()
    settings.DETECTION_MAX_TIMEOUT = 4
    with recorder.client as client:
        query("http://cdb_prometheus:9090", "vector(1)", 600, client=client)
    [request] = recorder.requests
    assert request.url.params["timeout"] == "4"
    assert request.extensions["timeout"]["read"] == 4


# --- Admin and the services file -----------------------------------------------------------------


def edit(client: Any, service: MonitoredService, **changes: str) -> Any:
    data = {
        "name": service.name,
        "url": service.url,
        "check_kind": service.check_kind,
        "judge": service.judge,
        "enabled": "on",
        "timeout": "3",
        **changes,
    }
    return client.post(reverse("admin:detection_monitoredservice_change", args=[service.pk]), data)


def test_admin_refuses_a_url_outside_the_allow_list_and_a_timeout_past_the_bound(
    client: Any, admin_user: Any
) -> None:
    service = MonitoredService.objects.create(name="cdb_risk", url="http://cdb_risk:8002/health")
    client.force_login(admin_user)
    for changes, error in [
        ({"url": "http://169.254.169.254/latest/meta-data/"}, NOT_ALLOWED),
        ({"url": "redis://10.0.0.9:6379", "check_kind": CheckKind.TCP}, NOT_ALLOWED),
        ({"timeout": "600"}, "at most 10"),
        ({"timeout": "0"}, "at least 0.1"),
    ]:
        response = edit(client, service, **changes)
        assert response.status_code == 200 and error in response.content.decode(), changes
        service.refresh_from_db()
        assert (service.url, service.timeout) == ("http://cdb_risk:8002/health", 3.0)
    assert edit(client, service, url="http://localhost:8002/health", timeout="5").status_code == 302
    service.refresh_from_db()
    assert (service.url, service.timeout) == ("http://localhost:8002/health", 5.0)


def test_the_model_checks_the_url_and_the_timeout(settings: Any) -> None:
    service = MonitoredService(name="x", url="http://evil.example/health", timeout=3)
    with pytest.raises(ValidationError) as refused:
        service.full_clean()
    assert NOT_ALLOWED in str(refused.value.message_dict["url"])
    settings.DETECTION_ALLOWED_HOSTS = ["evil.example"]
    service.full_clean()
    service.timeout = 11
    with pytest.raises(ValidationError, match="at most 10"):
        service.full_clean()


def test_load_services_refuses_a_base_url_outside_the_allow_list(settings: Any) -> None:
    with pytest.raises(CommandError, match=NOT_ALLOWED):
        call_command("load_services", "--base-url", "http://10.0.0.5:{port}", verbosity=0)
    assert not MonitoredService.objects.exists()
    settings.DETECTION_ALLOWED_HOSTS = ["10.0.0.5"]
    call_command("load_services", "--base-url", "http://10.0.0.5:{port}", verbosity=0)
    assert MonitoredService.objects.get(name="cdb_risk").url == "http://10.0.0.5:8002/health"


# --- What services answered ----------------------------------------------------------------------

SECRET = "internal admin page: db password hunter2"


@pytest.mark.parametrize(
    ("role", "sees"),
    [("viewer", False), ("responder", False), ("executive", False), ("lead", True), ("admin", True)],
)
def test_what_a_service_answered_is_shown_to_leads_and_above_only(
    client: Any, settings: Any, standins: Standins, role: str, sees: bool
) -> None:
    settings.HEALTH_DOWN_AFTER = 1
    standin = standins("risk")
    standin.set_answer(500, f"<html>{SECRET}</html>".encode(), "text/html")
    make_service("cdb_risk", standin.url, core=True)
    poll_all()
    client.force_login(make_user(role=role, is_staff=role == "admin"))
    body = client.get(reverse("detection:board")).content.decode()
    assert "HTTP 500, body is not JSON" in body  # the verdict is for everyone
    assert (SECRET in body) is sees
    # The incident the outage opened is for every role: the reply stays off it.
    from detection.services import signals_route

    signals_route()
    incident = Incident.objects.get()
    texts = [incident.title, incident.description, *TimelineEvent.objects.values_list("message", flat=True)]
    assert not any(SECRET in text for text in texts), texts


def test_a_reply_is_stored_apart_from_the_verdict(standins: Standins) -> None:
    standin = standins("market")
    standin.set_answer(503, {"status": "degraded", "detail": ["BTCUSDT stale"]})
    service = make_service("cdb_market", standin.url)
    result = check_one(service)
    assert (result.state, result.detail, result.reply) == (
        Health.DEGRADED,
        "status degraded (HTTP 503)",
        '["BTCUSDT stale"]',
    )
    health_record(service_id=service.pk, result=result)
    service.refresh_from_db()
    assert (service.last_detail, service.last_reply) == ("status degraded (HTTP 503)", '["BTCUSDT stale"]')
