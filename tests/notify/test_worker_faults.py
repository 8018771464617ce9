"""A real worker killed in the middle of a delivery: the message is neither lost nor duplicated for
a receiver that honours the idempotency key."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from django.db import transaction

from notify import services
from notify.models import Address, Channel, Message, MessageState
from tests import processes
from tests.standins.receiver import Receiver

PRIVATE_REDIS_DB = 11


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_worker_killed_mid_send_leaves_the_message_to_the_next_worker(tmp_path: Path) -> None:
    broker = processes.private_broker_url(PRIVATE_REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    env = processes.console_env(
        broker,
        NOTIFY_SWEEP_SECONDS="0.5",
        NOTIFY_SENDING_LEASE_SECONDS="2",
        NOTIFY_READ_TIMEOUT="60",  # the held request outlives the worker
    )
    logs = (tmp_path / "worker.log", tmp_path / "beat.log")
    with Receiver(mode="hold") as receiver:
        Channel.objects.create(name="incidents", url=receiver.apprise_url())
        with transaction.atomic():
            message = services.message_enqueue(
                address_kind=Address.CHANNEL, address="incidents", kind="page", title="INC-9", body="Page"
            )
        assert message is not None
        beat = processes.start_celery(
            ["beat", "--loglevel=WARNING", "--schedule", str(tmp_path / "beat-schedule")],
            env=env,
            log=logs[1],
        )
        worker = processes.start_celery(processes.worker_args("notify-a"), env=env, log=logs[0])
        second = None
        try:
            receiver.wait_for(1, timeout=30)  # the worker is inside the send, waiting for an answer
            message.refresh_from_db()
            assert message.state == MessageState.SENDING and message.attempts == 1  # the attempt is on record
            processes.kill(worker)
            receiver.mode = "ok"
            receiver.release()
            second = processes.start_celery(processes.worker_args("notify-b"), env=env, log=logs[0])
            processes.wait_until(
                lambda: Message.objects.get(pk=message.pk).state == MessageState.SENT,
                timeout=30,
                what="the next worker did not deliver the message",
                logs=logs,
            )
        finally:
            for proc in (beat, worker, second):
                if proc is not None:
                    processes.stop(proc)
            redis.Redis.from_url(broker).flushdb()
    message.refresh_from_db()
    assert message.attempts == 2 and message.possible_duplicate
    # Two requests reached the receiver, one message by its key: what a deduplicating receiver keeps.
    assert len(receiver.received) == 2 and receiver.unique_keys() == {message.idempotency_key}
