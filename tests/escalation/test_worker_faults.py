"""Escalation across real processes: a worker killed between two steps, and the broker stopped, delay
a step but never skip or repeat it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from escalation.models import Step, StepState
from incidents.models import Severity
from oncall.models import Duty
from tests import processes
from tests.incidents.factories import declare, make_user
from tests.oncall.factories import rotation

PRIVATE_REDIS_DB = 12


def _rota() -> None:
    start = timezone.now() - timedelta(days=1)
    for name, duty, role in (
        ("alice", Duty.ONCALL_ENGINEER, "responder"),
        ("lena", Duty.TECH_LEAD, "lead"),
        ("carl", Duty.EXECUTIVE, "executive"),
    ):
        rotation(
            make_user(role=role, username=name),
            name=duty,
            duty=duty,
            effective_from=start.date(),
            handoff_weekday=None,
        )


def _pages(incident_id: int) -> list[str]:
    from incidents.models import TimelineEvent

    return list(
        TimelineEvent.objects.filter(incident_id=incident_id, kind="escalation")
        .order_by("id")
        .values_list("message", flat=True)
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_killed_between_two_steps_delays_the_second_and_repeats_nothing(tmp_path: Path) -> None:
    _rota()
    broker = processes.private_broker_url(PRIVATE_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    env = processes.console_env(broker, ESCALATION_SWEEP_SECONDS="0.5", NOTIFY_SWEEP_SECONDS="60")
    logs = (tmp_path / "worker.log", tmp_path / "beat.log")
    incident = declare(make_user(role="responder"), severity=Severity.SEV1)
    # The tech lead's step (15 min in the matrix) falls due a few seconds from now.
    Step.objects.filter(incident=incident, target="tech_lead").update(
        due_at=timezone.now() + timedelta(seconds=6)
    )
    beat = processes.start_celery(
        ["beat", "--loglevel=WARNING", "--schedule", str(tmp_path / "s")], env=env, log=logs[1]
    )
    worker = processes.start_celery(processes.worker_args("esc-a"), env=env, log=logs[0])
    second = None
    try:
        processes.wait_until(
            lambda: len(_pages(incident.pk)) == 2, timeout=30, what="no first steps", logs=logs
        )
        processes.kill(worker)  # dies with the tech lead's step still ahead
        due = Step.objects.get(incident=incident, target="tech_lead").due_at
        time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 2)
        assert Step.objects.get(incident=incident, target="tech_lead").state == StepState.PENDING  # delayed
        second = processes.start_celery(processes.worker_args("esc-b"), env=env, log=logs[0])
        processes.wait_until(
            lambda: len(_pages(incident.pk)) == 3, timeout=30, what="no tech lead step", logs=logs
        )
        time.sleep(2)  # several more sweeps run: nothing is repeated
    finally:
        for proc in (beat, worker, second):
            if proc is not None:
                processes.stop(proc)
        redis.Redis.from_url(broker).flushdb()
    assert _pages(incident.pk) == [
        "Paged alice (on-call engineer)",
        "Notified carl (executive)",
        "Paged lena (tech lead)",
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_broker_outage_during_sweeps_loses_no_step(tmp_path: Path) -> None:
    _rota()
    broker = processes.PrivateRedis(tmp_path).start()
    env = processes.console_env(broker.url, ESCALATION_SWEEP_SECONDS="0.5", NOTIFY_SWEEP_SECONDS="60")
    logs = (tmp_path / "worker.log", tmp_path / "beat.log")
    beat = processes.start_celery(
        ["beat", "--loglevel=WARNING", "--schedule", str(tmp_path / "s")], env=env, log=logs[1]
    )
    workers = [processes.start_celery(processes.worker_args("esc-r"), env=env, log=logs[0])]
    try:
        first = [declare(make_user(role="responder"), severity=Severity.SEV1) for _ in range(5)]
        processes.wait_until(
            lambda: all(len(_pages(i.pk)) == 2 for i in first),
            timeout=30,
            what="no pages before the outage",
            logs=logs,
        )
        broker.stop()
        during = [declare(make_user(role="responder"), severity=Severity.SEV1) for _ in range(5)]
        time.sleep(3)
        assert all(_pages(i.pk) == [] for i in during)  # nothing reaches the worker: delayed, not lost
        broker.start()
        if (
            workers[-1].poll() is not None
        ):  # a worker that died with the broker is restarted, as systemd would
            workers.append(processes.start_celery(processes.worker_args("esc-r2"), env=env, log=logs[0]))
        processes.wait_until(
            lambda: all(len(_pages(i.pk)) == 2 for i in during),
            timeout=60,
            what="no pages after the outage",
            logs=logs,
        )
        time.sleep(2)
    finally:
        for proc in (beat, *workers):
            processes.stop(proc)
        broker.stop()
    for incident in first + during:
        assert _pages(incident.pk) == ["Paged alice (on-call engineer)", "Notified carl (executive)"]
