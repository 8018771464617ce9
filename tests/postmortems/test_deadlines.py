from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from django.urls import reverse
from django.utils import timezone

from console import calendar, notices
from notify.models import InboxItem, Message
from oncall.models import Duty
from postmortems import review, services
from postmortems.models import PostMortem
from tests import processes
from tests.incidents.factories import make_user
from tests.oncall.factories import rotation
from tests.postmortems.factories import in_review, resolved

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PRIVATE_REDIS_DB = 9


def _tech_lead(at: datetime) -> Any:
    lena = make_user(role="lead", username="lena", email="lena@example.com")
    rotation(
        lena,
        name="leads",
        duty=Duty.TECH_LEAD,
        effective_from=(at - timedelta(days=1)).date(),
        handoff_weekday=None,
    )
    return lena


def _steps(pm: PostMortem) -> list[str]:
    return list(
        pm.incident.events.filter(kind="postmortem").order_by("id").values_list("data__step", flat=True)
    )


@pytest.mark.django_db
def test_the_author_is_reminded_once_24_hours_before_the_deadline():
    with time_machine.travel(T0, tick=False):
        pm = resolved(1, commander=make_user(role="responder", email="ann@example.com")).postmortem
    with time_machine.travel(T0 + timedelta(hours=23), tick=False):
        assert services.deadlines_sweep() == {"reminded": 0, "escalated": 0}
    with time_machine.travel(T0 + timedelta(hours=24, minutes=1), tick=False):
        assert services.deadlines_sweep() == {"reminded": 1, "escalated": 0}
        assert services.deadlines_sweep() == {"reminded": 0, "escalated": 0}
    [mail] = Message.objects.filter(kind="reminder", address="ann@example.com")
    assert "24 hours left" in mail.body
    assert InboxItem.objects.filter(user=pm.author, kind="reminder").count() == 1
    assert _steps(pm).count("reminded") == 1


@pytest.mark.django_db
def test_an_overdue_postmortem_notifies_the_author_and_the_tech_lead_once():
    lena = _tech_lead(T0)
    with time_machine.travel(T0, tick=False):
        pm = resolved(1).postmortem
    with time_machine.travel(T0 + timedelta(hours=48, seconds=1), tick=False):
        assert services.deadlines_sweep() == {"reminded": 0, "escalated": 1}
        for _ in range(3):
            assert services.deadlines_sweep() == {"reminded": 0, "escalated": 0}
    assert set(InboxItem.objects.filter(title__contains="overdue").values_list("user", flat=True)) == {
        pm.author_id,
        lena.pk,
    }
    assert Message.objects.filter(kind="reminder", address="lena@example.com").count() == 1
    # Created late or swept late: no stale "24 hours left" after the deadline.
    with time_machine.travel(T0 + timedelta(hours=49), tick=False):
        services.deadlines_sweep()
    assert _steps(pm).count("overdue") == 1 and "reminded" not in _steps(pm)


@pytest.mark.django_db
def test_overdue_shows_on_home_and_in_metrics_until_published(client, settings):
    with time_machine.travel(T0, tick=False):
        pm = resolved(1).postmortem
    viewer = make_user(role="viewer")
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    link = reverse("postmortems:detail", args=[pm.pk])

    def postmortem_notices() -> list[str]:
        # Other apps' notices (an overdue drill type, say) share the home page.
        return [n.link for n in notices.notices_for(viewer) if n.link.startswith("/postmortems/")]

    with time_machine.travel(T0 + timedelta(hours=50), tick=False):
        assert postmortem_notices() == [link]
        assert "cdb_console_postmortems_overdue 1.0" in client.get("/metrics").content.decode()
        _, approver = in_review(pm)
        review.review_approve(document=pm, actor=approver)
        review.review_publish(document=pm, actor=approver)
        assert postmortem_notices() == []
        assert "cdb_console_postmortems_overdue 0.0" in client.get("/metrics").content.decode()


@pytest.mark.django_db
def test_a_published_postmortem_is_never_reminded():
    with time_machine.travel(T0, tick=False):
        pm = resolved(1).postmortem
        _, approver = in_review(pm)
        review.review_approve(document=pm, actor=approver)
        review.review_publish(document=pm, actor=approver)
    with time_machine.travel(T0 + timedelta(days=5), tick=False):
        assert services.deadlines_sweep() == {"reminded": 0, "escalated": 0}


@pytest.mark.django_db
def test_deadlines_are_on_the_calendar_and_the_list_filters_overdue(client):
    with time_machine.travel(T0, tick=False):
        pm = resolved(1).postmortem
        resolved(2)
    viewer = make_user(role="viewer")
    [event] = calendar.events(T0, T0 + timedelta(days=3), viewer, kinds=["postmortem"])
    assert (event.start, event.url) == (pm.deadline, reverse("postmortems:detail", args=[pm.pk]))
    client.force_login(viewer)
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        page = client.get(reverse("postmortems:list"), {"overdue": "1"}).content.decode()
    assert f"INC-{pm.incident_id}" in page and page.count("overdue</strong>") == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_killed_mid_sweep_loses_and_doubles_no_reminder(tmp_path: Path) -> None:
    lena = _tech_lead(timezone.now())
    count = 20
    late = timezone.now() - timedelta(hours=1)
    pms = [resolved(1).postmortem for _ in range(count)]
    PostMortem.objects.update(deadline=late)
    broker = processes.private_broker_url(PRIVATE_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    env = processes.console_env(broker, POSTMORTEM_SWEEP_SECONDS="0.3", NOTIFY_SWEEP_SECONDS="600")
    logs = (tmp_path / "worker.log", tmp_path / "beat.log")
    beat = processes.start_celery(
        ["beat", "--loglevel=WARNING", "--schedule", str(tmp_path / "s")], env=env, log=logs[1]
    )
    worker = processes.start_celery(processes.worker_args("pm-a"), env=env, log=logs[0])
    second = None

    def done() -> int:
        return PostMortem.objects.exclude(overdue_notified_at=None).count()

    try:
        processes.wait_until(lambda: done() > 0, timeout=60, what="no overdue notice", logs=logs)
        processes.kill(worker)
        at_kill = done()
        second = processes.start_celery(processes.worker_args("pm-b"), env=env, log=logs[0])
        processes.wait_until(lambda: done() == count, timeout=60, what="not every one notified", logs=logs)
        time.sleep(1.5)  # several more sweeps: nothing repeated
    finally:
        for proc in (beat, worker, second):
            if proc is not None:
                processes.stop(proc)
        redis.Redis.from_url(broker).flushdb()
    assert at_kill < count, "the worker finished the sweep before it was killed"
    for pm in pms:
        assert _steps(pm).count("overdue") == 1
        assert InboxItem.objects.filter(incident_id=pm.incident_id, user=lena).count() == 1
        assert InboxItem.objects.filter(incident_id=pm.incident_id, user=pm.author).count() == 1
    assert Message.objects.filter(kind="reminder", address="lena@example.com").count() == count
