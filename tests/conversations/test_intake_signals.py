"""What intake announces to the apps built on it: each new inbound message exactly once, through
Meta's retries, duplicate copies, replays and racing workers; nothing that rolled back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from conversations import processing, signals
from conversations.models import Conversation, Message, WebhookEvent
from conversations.whatsapp import intake, store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, envelope, text_payload


class Heard:
    """Everything one signal announced, in order (receivers may run in worker threads)."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, sender: object, signal: Signal, **kwargs: object) -> None:
        with self._lock:
            self.calls.append(kwargs)


@pytest.fixture
def heard() -> Iterator[dict[str, Heard]]:
    listeners = {
        "received": Heard(signals.message_received),
        "echo": Heard(signals.echo_received),
        "opened": Heard(signals.conversation_opened),
    }
    for listener in listeners.values():
        listener.signal.connect(listener, weak=False)
    yield listeners
    for listener in listeners.values():
        listener.signal.disconnect(listener)


def _store(body: dict) -> int:
    raw = json.dumps(body).encode()
    return store.store_event(raw, signature=sign(raw, TEST_SECRET), signature_valid=True, remote_addr=None)


@pytest.mark.django_db(transaction=True)
def test_it_announces_a_new_message_once_through_retries_duplicates_and_replays(inbox, post_webhook, heard) -> None:
    # given: a body carrying the same message twice (one copy per subscribed app)
    body = text_payload("wamid.ONCE", "Oi!")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append(dict(value["messages"][0]))

    # when: delivered, retried by Meta, and replayed by an admin
    post_webhook(body)
    post_webhook(body)
    for event_id in WebhookEvent.objects.values_list("pk", flat=True):
        processing.process_event(event_id, force=True)

    # then
    message = Message.objects.get()
    assert heard["received"].calls == [
        {
            "message_id": message.pk,
            "conversation_id": message.conversation_id,
            "inbox_id": inbox.pk,
            "status": "bot",
            "type": "text",
        }
    ]
    assert heard["echo"].calls == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_announces_a_message_once_when_workers_race_on_copies_of_it(inbox, heard) -> None:
    # given: four copies of a body for an existing conversation, one per worker
    processing.process_event(_store(text_payload("wamid.BEFORE", "primeira")))
    events = [_store(text_payload("wamid.RACED", "segunda")) for _ in range(4)]
    barrier = threading.Barrier(len(events))
    errors: list[BaseException] = []

    def work(event_id: int) -> None:
        try:
            barrier.wait()
            processing.process_event(event_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(pk,)) for pk in events]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert errors == []
    raced = Message.objects.get(wamid="wamid.RACED")
    assert [call["message_id"] for call in heard["received"].calls] == [
        Message.objects.get(wamid="wamid.BEFORE").pk,
        raced.pk,
    ]
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"done"}


@pytest.mark.django_db(transaction=True)
def test_it_announces_nothing_for_a_rolled_back_transaction(inbox, heard) -> None:
    # given
    raw = json.dumps(text_payload("wamid.UNDONE")).encode()

    # when
    with pytest.raises(RuntimeError), transaction.atomic():
        intake.process_body(raw, signature=sign(raw, TEST_SECRET))
        raise RuntimeError("the worker died before committing")

    # then
    assert Message.objects.count() == 0
    assert (heard["received"].calls, heard["opened"].calls) == ([], [])


@pytest.mark.django_db(transaction=True)
def test_it_announces_an_echo_as_an_echo_once(inbox, post_webhook, heard) -> None:
    # given
    body = envelope(
        {
            "message_echoes": [
                {
                    "from": "5511900000000",
                    "to": "5511987654321",
                    "id": "wamid.ECHO",
                    "timestamp": "1750000000",
                    "type": "text",
                    "text": {"body": "Respondi pelo celular"},
                }
            ]
        }
    )
    body["entry"][0]["changes"][0]["field"] = "smb_message_echoes"

    # when
    post_webhook(body)
    post_webhook(body)

    # then
    echo = Message.objects.get()
    assert heard["echo"].calls == [
        {
            "message_id": echo.pk,
            "conversation_id": echo.conversation_id,
            "inbox_id": inbox.pk,
            "status": "queued",
            "type": "text",
        }
    ]
    assert heard["received"].calls == []


@pytest.mark.django_db(transaction=True)
def test_it_announces_each_opened_conversation_once(inbox, post_webhook, heard) -> None:
    # given: two messages of a new customer, then the conversation is closed and they write again
    post_webhook(text_payload("wamid.O1", "oi", timestamp=1_750_000_000))
    post_webhook(text_payload("wamid.O2", "tudo bem?", timestamp=1_750_000_010))
    first = Conversation.objects.get()
    Conversation.objects.filter(pk=first.pk).update(status=Conversation.Status.CLOSED, closed=timezone.now())

    # when
    post_webhook(text_payload("wamid.O3", "voltei", timestamp=1_750_000_900))
    post_webhook(text_payload("wamid.O3", "voltei", timestamp=1_750_000_900))

    # then
    second = Conversation.objects.exclude(pk=first.pk).get()
    assert [call["conversation_id"] for call in heard["opened"].calls] == [first.pk, second.pk]
