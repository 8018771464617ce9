"""The console's own data age in the top bar of every page: fresh, stale, never, or a job failing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from console.models import Heartbeat
from console.selectors import age_text
from console.services import heartbeat
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
LIVE = reverse("console:liveness")
BOARD = reverse("detection:board")


def liveness_of(client: Any, url: str = LIVE) -> tuple[str, str]:
    body = client.get(url).content.decode()
    match = re.search(r'<span id="liveness" class="([^"]*)" data-state="(\w+)"[^>]*>([^<]*)</span>', body)
    assert match, body
    assert ("liveness-stale" in match.group(1)) == (match.group(2) != "fresh")
    return match.group(2), match.group(3)


def test_fresh_data_shows_its_age(client, viewer):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        Heartbeat.objects.create(name="health", last_seen=timezone.now())
        Heartbeat.objects.create(name="prometheus", last_seen=timezone.now() - timedelta(seconds=9))
    client.force_login(viewer)
    with time_machine.travel(start + timedelta(seconds=4), tick=False):
        assert liveness_of(client) == ("fresh", "data 4 s old")


def test_stopped_jobs_turn_it_into_a_warning(client, viewer):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        Heartbeat.objects.create(name="health", last_seen=timezone.now())
    client.force_login(viewer)
    limit = 3 * max(
        django_settings.HEALTH_POLL_SECONDS,
        django_settings.PROMETHEUS_EVAL_SECONDS,
        django_settings.KILLSWITCH_RECONCILE_SECONDS,
    )
    with time_machine.travel(start + timedelta(seconds=limit - 1), tick=False):
        assert liveness_of(client)[0] == "fresh"
    with time_machine.travel(start + timedelta(minutes=3), tick=False):
        assert liveness_of(client) == ("stale", "⚠ Background jobs stopped: data 3 min old")


def test_no_heartbeat_ever_is_a_warning(client, viewer):
    client.force_login(viewer)
    assert liveness_of(client) == ("never", "⚠ Background jobs stopped: no data yet")


def test_a_failing_job_is_named_while_the_others_run(client, viewer):
    """A job that runs but fails (a reconcile that cannot read its target) is not 'fresh data'."""
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        heartbeat("health")
        heartbeat("kill switch production")
    client.force_login(viewer)
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        heartbeat("health")
        heartbeat("kill switch production", error="OSError: [Errno 5] Input/output error")
        assert liveness_of(client) == (
            "failing",
            "⚠ kill switch production failing: OSError: [Errno 5] Input/output error",
        )
        body = client.get(LIVE).content.decode()
        assert "kill switch production 5 s ago (failing: OSError: [Errno 5] Input/output error)" in body
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        heartbeat("kill switch production")  # recovered: a success after the failure
        assert liveness_of(client)[0] == "fresh"


def test_the_kill_switch_reconcile_counts_as_a_heartbeat(client, viewer, ks_files):
    from killswitch import services

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        Heartbeat.objects.create(name="health", last_seen=timezone.now() - timedelta(hours=2))
        services.killswitch_reconcile_all()
    client.force_login(viewer)
    with time_machine.travel(start + timedelta(seconds=7), tick=False):
        body = client.get(LIVE).content.decode()
    assert 'data-state="fresh"' in body and "data 7 s old" in body
    assert (
        "health 2 h ago · prometheus never · kill switch drill 7 s ago · kill switch production 7 s ago"
        in body
    )


def test_it_is_on_every_page_for_people_with_a_role_only(client, viewer, norole, responder):
    Heartbeat.objects.create(name="health", last_seen=timezone.now())
    incident = declare(responder)
    assert 'id="liveness"' not in client.get(reverse("login")).content.decode()
    client.force_login(norole)
    forbidden = client.get(BOARD)
    assert forbidden.status_code == 403 and 'id="liveness"' not in forbidden.content.decode()
    assert client.get(LIVE).status_code == 403
    client.force_login(viewer)
    for url in (reverse("incidents:home"), reverse("incidents:detail", args=[incident.pk]), BOARD):
        state, _ = liveness_of(client, url)
        assert state == "fresh", url


def test_it_polls_itself_and_costs_one_query(client, viewer, django_assert_num_queries):
    Heartbeat.objects.create(name="health", last_seen=timezone.now())
    client.force_login(viewer)
    client.get(LIVE)
    # session, user, the role check (the user's permissions), and the one liveness query
    with django_assert_num_queries(5) as ctx:
        body = client.get(LIVE, **HX).content.decode()
    assert body.lstrip().startswith('<span id="liveness"')
    assert f'hx-get="{LIVE}"' in body and 'hx-trigger="every 5s"' in body
    assert sum("console_heartbeat" in q["sql"] for q in ctx.captured_queries) == 1
    for i in range(20):
        Heartbeat.objects.create(name=f"job{i}", last_seen=timezone.now())
    with django_assert_num_queries(5):
        client.get(LIVE)


def test_pages_that_do_not_show_it_do_not_query_it(client, viewer, responder, django_assert_max_num_queries):
    incident = declare(responder)
    client.force_login(viewer)
    with django_assert_max_num_queries(30) as ctx:
        client.get(reverse("incidents:poll", args=[incident.pk]), {"v": 0})
    assert not any("console_heartbeat" in q["sql"] for q in ctx.captured_queries)


def test_age_text_rounds_to_one_unit():
    assert [age_text(s) for s in (-3, 0, 4.9, 89, 180, 5399, 7200, 86400 * 3)] == [
        "0 s",
        "0 s",
        "4 s",
        "89 s",
        "3 min",
        "90 min",
        "2 h",
        "3 d",
    ]
