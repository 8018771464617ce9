"""The 24-hour announcement (playbook section 9, step 1): the engineering channel and each
participant, exactly once, through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
import time_machine
from django.db import connection
from django.utils import timezone

from drills import services
from drills.models import Status
from notify.models import InboxItem, Message
from tests import processes
from tests.drills.factories import drill, drill_type
from tests.incidents.factories import make_user

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
PRIVATE_REDIS_DB = 9


def _announcements(pk: int) -> list[str]:
    return sorted(
        Message.objects.filter(dedupe_key__startswith=f"drill-announce:{pk}:").values_list(
            "address", flat=True
        )
    )


@pytest.mark.django_db
def test_a_drill_is_announced_24_hours_ahead_to_engineering_and_each_participant_once():
    alice, bob = make_user(role="responder", username="alice"), make_user(role="responder", username="bob")
    alice.email = "alice@example.com"
    alice.save()
    kind = drill_type()
    kind.participants.add(alice, bob)
    soon = drill(kind, at=NOW + timedelta(hours=23))
    later = drill(kind, at=NOW + timedelta(hours=25))
    with time_machine.travel(NOW, tick=False):
        assert services.drills_announce_due() == 1
        assert services.drills_announce_due() == 0  # a second sweep finds nothing due
    soon.refresh_from_db()
    assert (soon.status, soon.announced_at) == (Status.ANNOUNCED, NOW)
    assert _announcements(soon.pk) == ["engineering"]
    assert _announcements(later.pk) == []
    channel = Message.objects.get(address="engineering")
    assert "DRILL" in channel.title and "alice, bob" in channel.body
    assert list(Message.objects.filter(kind="drill_reminder").values_list("address", flat=True)) == [
        "alice@example.com"
    ]
    assert sorted(
        InboxItem.objects.filter(kind="drill_reminder").values_list("user__username", flat=True)
    ) == [
        "alice",
        "bob",
    ]


@pytest.mark.django_db
def test_a_moved_drill_is_announced_again_for_its_new_time_and_a_cancelled_one_never():
    lead = make_user(role="lead")
    one, other = drill(at=NOW + timedelta(hours=2)), drill(at=NOW + timedelta(hours=3))
    with time_machine.travel(NOW, tick=False):
        services.drills_announce_due()
        services.drill_move(drill=one, scheduled_for=NOW + timedelta(hours=4), actor=lead)
        services.drill_cancel(drill=other, actor=lead)
        services.drills_announce_due()
    assert len(_announcements(one.pk)) == 2
    assert len(_announcements(other.pk)) == 1  # announced before it was cancelled, never again


def _blocked_on_the_outbox() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            ['%INSERT INTO "notify_message"%'],
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_killed_between_claim_and_enqueue_announces_exactly_once(tmp_path: Path) -> None:
    """The worker is held inside the announcing transaction (after its claim, at the outbox insert,
    behind an uncommitted row of the same dedupe key), killed there, and a second worker's sweep
    announces the drill: one channel post, one reminder per participant."""
    kind = drill_type()
    people = [make_user(role="responder", username=f"p{i}", email=f"p{i}@example.com") for i in range(2)]
    kind.participants.add(*people)
    one = drill(kind, at=timezone.now() + timedelta(hours=6))
    key = f"drill-announce:{one.pk}:{one.scheduled_for.isoformat()}"
    broker = processes.private_broker_url(PRIVATE_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    env = processes.console_env(broker, DRILL_ANNOUNCE_SECONDS="0.5", NOTIFY_SWEEP_SECONDS="3600")
    logs = (tmp_path / "worker.log", tmp_path / "beat.log")
    db = connection.settings_dict
    blocker = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=db["NAME"])
    blocker.execute(
        "INSERT INTO notify_message (created_at, kind, address_kind, address, title, body, dedupe_key, "
        "state, attempts, next_attempt_at, last_error, possible_duplicate, priority) "
        "VALUES (now(), 'x', 'channel', 'x', 'x', 'x', %s, 'queued', 0, now(), '', false, 5)",
        [key],
    )  # uncommitted: the worker's outbox insert of the same key waits for it
    beat = processes.start_celery(
        ["beat", "--loglevel=WARNING", "--schedule", str(tmp_path / "s")], env=env, log=logs[1]
    )
    worker = processes.start_celery(processes.worker_args("drill-a"), env=env, log=logs[0])
    second = None
    try:
        processes.wait_until(
            _blocked_on_the_outbox, timeout=60, what="the worker never reached the outbox", logs=logs
        )
        processes.kill(worker)  # dies after claiming the drill, before its messages are stored
        blocker.rollback()
        processes.wait_until(
            lambda: not _blocked_on_the_outbox(), timeout=10, what="the dead worker's lock stayed"
        )
        one.refresh_from_db()
        assert one.announced_at is None and one.status == Status.SCHEDULED  # the claim rolled back with it
        assert _announcements(one.pk) == []
        second = processes.start_celery(processes.worker_args("drill-b"), env=env, log=logs[0])
        processes.wait_until(
            lambda: bool(_announcements(one.pk)),
            timeout=60,
            what="no announcement after the restart",
            logs=logs,
        )
        processes.wait_until(
            lambda: InboxItem.objects.filter(kind="drill_reminder").count() == 2,
            timeout=10,
            what="no reminders",
        )
        import time

        time.sleep(2)  # several more sweeps run: nothing is repeated
    finally:
        blocker.close()
        for proc in (beat, worker, second):
            if proc is not None:
                processes.stop(proc)
        redis.Redis.from_url(broker).flushdb()
    one.refresh_from_db()
    assert one.status == Status.ANNOUNCED
    assert _announcements(one.pk) == ["engineering"]
    assert sorted(Message.objects.filter(kind="drill_reminder").values_list("address", flat=True)) == [
        "p0@example.com",
        "p1@example.com",
    ]
    assert InboxItem.objects.filter(kind="drill_reminder").count() == 2
