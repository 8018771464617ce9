"""The outbox: stored with the change, delivered by workers through Apprise, retried, never lost, and
sent twice only when a worker dies mid-send (then with the same idempotency key)."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notify import services
from notify.models import Address, Channel, InboxItem, Message, MessageState
from tests.incidents.factories import make_user
from tests.standins.receiver import Receiver
from tests.standins.smtp import Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver() -> Any:
    with Receiver() as r:
        yield r


@pytest.fixture
def mailbox(settings: Any) -> Any:
    with Mailbox() as box:
        settings.NOTIFY_EMAIL_URL = box.apprise_url()
        yield box


@pytest.fixture(autouse=True)
def _fast(settings: Any) -> None:
    settings.NOTIFY_CONNECT_TIMEOUT = 2
    settings.NOTIFY_READ_TIMEOUT = 3
    settings.NOTIFY_CHANNELS = {}


def enqueue(**fields: Any) -> Message | None:
    defaults = {"kind": "notice", "title": "INC-1 SEV-1 Kill switch", "body": "Halted."}
    with transaction.atomic():
        return services.message_enqueue(**(defaults | fields))


def channel(name: str, url: str, **kwargs: Any) -> Channel:
    return Channel.objects.create(name=name, url=url, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_enqueue_needs_the_transaction_of_the_change():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        services.message_enqueue(address_kind=Address.CHANNEL, address="x", kind="n", title="t", body="b")


def test_a_message_is_stored_with_its_change_or_not_at_all():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        services.message_enqueue(address_kind=Address.CHANNEL, address="x", kind="n", title="t", body="b")
        raise ZeroDivisionError  # the change that caused it fails
    assert not Message.objects.exists()


def test_a_dedupe_key_queues_a_message_once():
    assert enqueue(address_kind=Address.CHANNEL, address="incidents", dedupe_key="page:1:step:0") is not None
    assert enqueue(address_kind=Address.CHANNEL, address="incidents", dedupe_key="page:1:step:0") is None
    assert Message.objects.count() == 1


def test_it_delivers_to_a_json_webhook_once_with_an_idempotency_key(receiver):
    channel("incidents", receiver.apprise_url())
    message = enqueue(address_kind=Address.CHANNEL, address="incidents")
    assert services.messages_deliver_due() == 1
    [got] = receiver.wait_for(1)
    assert got.body["title"] == "INC-1 SEV-1 Kill switch" and got.body["message"] == "Halted."
    assert got.key == f"cdb-console-message-{message.pk}"
    message.refresh_from_db()
    assert (message.state, message.attempts, message.last_error) == (MessageState.SENT, 1, "")
    assert services.messages_deliver_due() == 0  # nothing is due any more
    assert len(receiver.received) == 1


def test_it_emails_a_person_through_a_real_smtp_server(mailbox):
    message = enqueue(address_kind=Address.EMAIL, address="oncall@cdb.example", kind="page")
    services.messages_deliver_due()
    [mail] = mailbox.wait_for(1)
    assert mail["To"] == "oncall@cdb.example" and mail["Subject"] == "INC-1 SEV-1 Kill switch"
    assert mail["X-Idempotency-Key"] == f"cdb-console-message-{message.pk}"
    assert "Halted." in mail.get_body(("plain",)).get_content()


def test_a_channel_that_is_down_is_retried_with_backoff_then_given_up(receiver, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    settings.NOTIFY_RETRY_BASE_SECONDS = 10
    receiver.mode = "fail"
    channel("incidents", receiver.apprise_url())
    message = enqueue(address_kind=Address.CHANNEL, address="incidents")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.messages_deliver_due()
    message.refresh_from_db()
    assert message.state == MessageState.RETRYING and message.attempts == 1
    assert message.next_attempt_at == start + timedelta(seconds=10) and "500" in message.last_error
    with time_machine.travel(start + timedelta(seconds=9), tick=False):
        assert services.messages_deliver_due() == 0
        assert len(receiver.received) == 1  # not due yet
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        services.messages_deliver_due()
    message.refresh_from_db()
    assert message.attempts == 2 and message.next_attempt_at == start + timedelta(seconds=30)
    receiver.mode = "ok"
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        services.messages_deliver_due()
    message.refresh_from_db()
    assert message.state == MessageState.SENT and message.attempts == 3
    # A message that fails as often as allowed is given up, with the reason kept.
    receiver.mode = "fail"
    failing = enqueue(address_kind=Address.CHANNEL, address="incidents", title="second")
    for seconds in (0, 10, 30):
        with time_machine.travel(start + timedelta(minutes=5, seconds=seconds), tick=False):
            services.messages_deliver_due()
    failing.refresh_from_db()
    assert failing.state == MessageState.FAILED and failing.attempts == 3 and failing.last_error


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda: None, "no channel named 'incidents'"),
        (
            lambda: channel("incidents", "json://127.0.0.1:9/x", enabled=False),
            "channel 'incidents' is disabled",
        ),
        (lambda: channel("incidents", "nonsense://x"), "not a valid notification URL"),
    ],
    ids=["unknown", "disabled", "bad-url"],
)
def test_an_undeliverable_address_says_why(setup, error):
    setup()
    message = enqueue(address_kind=Address.CHANNEL, address="incidents")
    services.messages_deliver_due()
    message.refresh_from_db()
    assert message.state == MessageState.RETRYING and error in message.last_error


def test_email_without_a_relay_says_so(settings):
    settings.NOTIFY_EMAIL_URL = ""
    message = enqueue(address_kind=Address.EMAIL, address="a@cdb.example")
    services.messages_deliver_due()
    message.refresh_from_db()
    assert "email is not set up" in message.last_error


def test_the_environment_names_channels_and_wins_over_the_database(receiver, settings):
    channel("incidents", "json://127.0.0.1:9/nowhere")
    settings.NOTIFY_CHANNELS = {"incidents": receiver.apprise_url("/from-env")}
    enqueue(address_kind=Address.CHANNEL, address="incidents")
    services.messages_deliver_due()
    assert [r.path for r in receiver.wait_for(1)] == ["/from-env"]


def test_a_down_channel_never_blocks_the_change(settings):
    """Enqueueing writes one row; nothing waits on the network until a worker delivers."""
    channel("incidents", "json://10.255.255.1:9/unroutable")
    with transaction.atomic():
        started = timezone.now()
        services.message_enqueue(
            address_kind=Address.CHANNEL, address="incidents", kind="n", title="t", body="b"
        )
        assert (timezone.now() - started).total_seconds() < 1.0


def test_a_claim_whose_worker_died_is_sent_again_with_the_same_key(receiver, settings):
    """The at-least-once edge: the worker claimed and maybe sent, then died before recording."""
    settings.NOTIFY_SENDING_LEASE_SECONDS = 60
    channel("incidents", receiver.apprise_url())
    message = enqueue(address_kind=Address.CHANNEL, address="incidents")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        [claimed] = services._claim(now=timezone.now(), limit=10)  # the dead worker's claim
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        assert services.messages_deliver_due() == 0  # its lease still runs
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert services.messages_deliver_due() == 1
    message.refresh_from_db()
    assert message.state == MessageState.SENT and message.possible_duplicate and message.attempts == 2
    # The late worker's result (had it survived) cannot overwrite the new claim's record.
    services._record(claimed, services.delivery.Result(False, "late"), now=timezone.now())
    message.refresh_from_db()
    assert message.state == MessageState.SENT and receiver.unique_keys() == {message.idempotency_key}


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliverers_send_each_message_once(receiver):
    channel("incidents", receiver.apprise_url())
    with transaction.atomic():
        services.messages_enqueue(
            [
                services.Outgoing(
                    address_kind=Address.CHANNEL, address="incidents", kind="n", title=f"m{i}", body="b"
                )
                for i in range(60)
            ]
        )
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        services.messages_deliver_due()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    received = receiver.wait_for(60)
    assert len(received) == 60 and len(receiver.unique_keys()) == 60
    assert set(Message.objects.values_list("state", flat=True)) == {MessageState.SENT}


def test_the_test_command_says_whether_it_arrived(receiver):
    channel("incidents", receiver.apprise_url())
    out = StringIO()
    call_command("notifications", "test", "incidents", stdout=out)
    assert "incidents: test message delivered." in out.getvalue()
    assert "test of the 'incidents' channel" in receiver.wait_for(1)[0].body["message"]
    receiver.mode = "fail"
    with pytest.raises(CommandError, match=r"not delivered: .*500"):
        call_command("notifications", "test", "incidents")
    channel("quiet", "json://127.0.0.1:9/x", enabled=False)
    out = StringIO()
    call_command("notifications", "list", stdout=out)
    assert (
        "incidents            database" in out.getvalue()
        and "quiet                database (disabled)" in out.getvalue()
    )


def test_the_admin_button_sends_a_test_and_reports(client, receiver):
    ch = channel("incidents", receiver.apprise_url())
    admin = make_user(role="admin", is_staff=True)
    client.force_login(admin)
    response = client.post(reverse("admin:notify_channel_send_test", args=[ch.pk]), follow=True)
    assert "Channel incidents: the test message was delivered." in response.content.decode()
    assert len(receiver.wait_for(1)) == 1
    page = client.get(reverse("admin:notify_channel_change", args=[ch.pk])).content.decode()
    assert "Send a test message" in page
    # A lead may read channels but not send tests (it needs the change permission).
    client.force_login(make_user(role="lead", is_staff=True))
    client.post(reverse("admin:notify_channel_send_test", args=[ch.pk]))
    assert len(receiver.received) == 1


def test_admin_refuses_a_url_apprise_does_not_know(client):
    client.force_login(make_user(role="admin", is_staff=True))
    response = client.post(
        reverse("admin:notify_channel_add"), {"name": "x", "url": "nonsense://y", "enabled": "on"}
    )
    assert response.status_code == 200 and "Apprise does not know this URL" in response.content.decode()
    assert not Channel.objects.exists()


# --- The inbox ------------------------------------------------------------------------------------


def test_the_bell_counts_unread_items_and_the_inbox_marks_them_read(client):
    alice, bob = make_user(role="responder"), make_user(role="responder")
    with transaction.atomic():
        for i in range(3):
            services.inbox_deliver(user=alice, title=f"Page {i}", kind="page", incident_id=None)
        services.inbox_deliver(user=bob, title="Not alice's", kind="page")
        assert services.inbox_deliver(user=alice, title="dup", kind="page", dedupe_key="k") is not None
        assert services.inbox_deliver(user=alice, title="dup", kind="page", dedupe_key="k") is None
    client.force_login(alice)
    bell = client.get(reverse("notify:bell")).content.decode()
    assert 'data-unread="4"' in bell and 'class="bell-count">4<' in bell
    page = client.get(reverse("notify:inbox")).content.decode()
    assert "Page 2" in page and "Not alice's" not in page
    first = InboxItem.objects.filter(user=alice).order_by("id").first()
    client.post(reverse("notify:mark_read"), {"item": first.pk})
    assert 'data-unread="3"' in client.get(reverse("notify:bell")).content.decode()
    client.post(reverse("notify:mark_read"))
    assert 'data-unread="0"' in client.get(reverse("notify:bell")).content.decode()
    assert InboxItem.objects.filter(user=bob, read_at__isnull=True).count() == 1


def test_the_bell_is_in_the_top_bar_and_costs_one_query(client, django_assert_num_queries):
    user = make_user(role="viewer")
    client.force_login(user)
    assert 'id="inbox-bell"' in client.get(reverse("incidents:home")).content.decode()
    client.get(reverse("notify:bell"))
    with django_assert_num_queries(3):  # session, user, count
        client.get(reverse("notify:bell"))


def test_acknowledging_from_the_inbox_works(client, responder):
    from incidents import services as incident_services
    from tests.incidents.factories import declare

    incident = declare(responder)
    with transaction.atomic():
        services.inbox_deliver(user=responder, title="Page", kind="page", incident_id=incident.pk)
    client.force_login(responder)
    page = client.get(reverse("notify:inbox")).content.decode()
    action = reverse("incidents:acknowledge", args=[incident.pk])
    assert f'action="{action}"' in page
    client.post(action)
    incident.refresh_from_db()
    assert incident.acknowledged_by == responder
    del incident_services


def test_contact_points_are_kept_on_the_profile(client):
    user = make_user(role="responder")
    client.force_login(user)
    response = client.post(
        reverse("notify:contact"),
        {"email": "alice@cdb.example", "chat_handle": " @alice ", "webhook_url": "nonsense://x"},
    )
    assert response.status_code == 422 and "Not a notification URL" in response.content.decode()
    client.post(
        reverse("notify:contact"),
        {"email": "alice@cdb.example", "chat_handle": " @alice ", "webhook_url": "ntfy://cdb-alice"},
    )
    user.contact.refresh_from_db()
    assert (user.contact.email, user.contact.chat_handle, user.contact.webhook_url) == (
        "alice@cdb.example",
        "@alice",
        "ntfy://cdb-alice",
    )
