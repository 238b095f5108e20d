"""Intake publishes live events on the channel layer, after commit, per inbox and per conversation."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from conversations import processing
from conversations.events import conversation_group, inbox_group
from conversations.models import Conversation, Message
from conversations.whatsapp import intake, store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, status_payload, text_payload


async def _drain(layer, channel: str, timeout: float = 2.0) -> list[dict]:
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(layer.receive(channel), timeout))
        except TimeoutError:
            return received
        timeout = 0.3


def _subscribe(layer, group: str) -> str:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def _process(body: dict) -> None:
    raw = json.dumps(body).encode()
    event_id = store.store_event(raw, signature=sign(raw, TEST_SECRET), signature_valid=True, remote_addr=None)
    processing.process_event(event_id)


@pytest.fixture
def layer(settings):
    # A fresh prefix keeps parallel runs on one Redis apart; without REDIS_URL this is the
    # in-memory layer of the embedded mode.
    if settings.REDIS_URL:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
            }
        }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield get_channel_layer()
    channel_layers.backends.clear()


@pytest.mark.django_db(transaction=True)
def test_it_publishes_the_opening_and_the_message_on_the_inbox_group(inbox, layer) -> None:
    # given
    channel = _subscribe(layer, inbox_group(inbox.pk))

    # when
    _process(text_payload("wamid.LIVE1", "Oi, tudo bem?"))

    # then
    events = async_to_sync(_drain)(layer, channel)
    conversation = Conversation.objects.get()
    message = Message.objects.get()
    assert events == [
        {"type": "conversation.opened", "conversation_id": conversation.pk, "inbox_id": inbox.pk},
        {
            "type": "message.created",
            "message_id": message.pk,
            "conversation_id": conversation.pk,
            "inbox_id": inbox.pk,
        },
    ]


@pytest.mark.django_db(transaction=True)
def test_it_publishes_new_messages_and_status_changes_on_the_conversation_group(inbox, layer) -> None:
    # given: an open conversation
    _process(text_payload("wamid.LIVE2", "primeira"))
    conversation = Conversation.objects.get()
    outbound = Message.objects.create(
        conversation=conversation, direction="out", sender_kind="bot", type="text", wamid="wamid.OUTLIVE"
    )
    channel = _subscribe(layer, conversation_group(conversation.pk))

    # when
    _process(text_payload("wamid.LIVE3", "segunda"))
    _process(status_payload("wamid.OUTLIVE", "read", 1_750_000_000))

    # then
    events = async_to_sync(_drain)(layer, channel)
    second = Message.objects.get(wamid="wamid.LIVE3")
    assert [(e["type"], e["message_id"]) for e in events] == [
        ("message.created", second.pk),
        ("message.updated", outbound.pk),
    ]
    assert events[1]["what"] == "status"


@pytest.mark.django_db(transaction=True)
def test_it_publishes_nothing_when_the_transaction_rolls_back(inbox, layer) -> None:
    # given
    channel = _subscribe(layer, inbox_group(inbox.pk))

    # when: the write that would have published is rolled back
    with pytest.raises(RuntimeError), transaction.atomic():
        raw = json.dumps(text_payload("wamid.ROLLBACK")).encode()
        intake.process_body(raw, signature=sign(raw, TEST_SECRET))
        raise RuntimeError("abort")

    # then
    assert async_to_sync(_drain)(layer, channel, 0.5) == []
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_publishes_nothing_for_a_duplicate(inbox, layer) -> None:
    # given
    _process(text_payload("wamid.ONCE"))
    channel = _subscribe(layer, inbox_group(inbox.pk))

    # when
    _process(text_payload("wamid.ONCE"))

    # then
    assert async_to_sync(_drain)(layer, channel, 0.5) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
def test_it_uses_the_redis_channel_layer_in_production_mode(inbox, layer) -> None:
    from channels_redis.core import RedisChannelLayer

    assert isinstance(layer, RedisChannelLayer)
