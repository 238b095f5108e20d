"""Sending again, by a person's decision, a message WhatsApp never confirmed (or that failed
before Meta accepted it): the service and the admin action."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from conversations import delivery, outbound, services, tasks
from conversations.events import conversation_group
from conversations.models import Conversation, Customer, Inbox, Message
from conversations.outbound import SendRefused
from tests.fake_graph import FakeGraph, graph_error

pytest_plugins = ["tests.conftest_graph"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]


@pytest.fixture
def conversation(inbox: Inbox) -> Conversation:
    customer = Customer.objects.create(wa_id="5511987654321", phone="+5511987654321", name="Maria")
    # The customer wrote an hour ago: the 24-hour window is open.
    return Conversation.objects.create(inbox=inbox, customer=customer, last_inbound=timezone.now() - timedelta(hours=1))


@pytest.fixture
def unconfirmed(settings: Any, conversation: Conversation, fake_graph: FakeGraph) -> Message:
    """A text whose send's answer was lost, past the confirmation window with no status webhook."""
    settings.WHATSAPP_HTTP_TIMEOUT = 0.2
    fake_graph.script("messages", graph_error(131000, status=500, delay=0.6))
    message = outbound.send_text(conversation, "Oi")
    later = timezone.now() + timedelta(seconds=settings.WHATSAPP_SEND_CONFIRM_SECONDS + 1)
    assert delivery.reconcile_unconfirmed(later) == [message.pk]
    settings.WHATSAPP_HTTP_TIMEOUT = 1.0
    message.refresh_from_db()
    return message


def snapshot(message: Message) -> tuple:
    message.refresh_from_db()
    return (message.status, message.send_attempts, message.wamid, message.failed_at, message.error_code)


def test_it_sends_an_unconfirmed_message_again_exactly_once(
    unconfirmed: Message, fake_graph: FakeGraph, admin_user: User
) -> None:
    # given
    assert unconfirmed.status == Message.Status.UNCONFIRMED
    assert len(fake_graph.sends()) == 1

    # when: a person sends it again; then the sweeps, a duplicate task and the command run
    outbound.send_again(unconfirmed, admin_user)
    tasks.send_message.apply(args=[unconfirmed.pk])
    tasks.sweep_outbound_messages()
    call_command("send_pending", "--all")

    # then: exactly one more request reached Meta
    unconfirmed.refresh_from_db()
    assert len(fake_graph.sends()) == 2
    [accepted] = fake_graph.accepted
    assert unconfirmed.status == Message.Status.SENT
    assert unconfirmed.wamid == accepted["wamid"]
    assert unconfirmed.send_attempts == 2
    assert (unconfirmed.error_code, unconfirmed.error_title, unconfirmed.error_details) == (None, "", "")


def test_it_sends_again_a_message_that_failed_while_the_inbox_was_paused(
    conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: Meta refused a message for an expired token, which paused the inbox...
    fake_graph.script("messages", graph_error(190, status=401, details="Token expired"))
    first = outbound.send_text(conversation, "Primeira")
    # ...and a message already queued then failed without being sent
    second = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.ATTENDANT,
        type="text",
        text="Segunda",
        status=Message.Status.PENDING,
        payload={"messaging_product": "whatsapp", "to": "+5511987654321", "type": "text", "text": {"body": "Segunda"}},
    )
    delivery.deliver(second.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.error_code) == (Message.Status.FAILED, 190)
    assert second.status == Message.Status.FAILED

    # when: the admin fixes the token and sends both again
    services.resume_sending(conversation.inbox)
    outbound.send_again(first)
    outbound.send_again(second)

    # then
    first.refresh_from_db()
    second.refresh_from_db()
    assert len(fake_graph.sends()) == 3
    assert (first.status, second.status) == (Message.Status.SENT, Message.Status.SENT)
    assert (first.failed_at, second.failed_at) == (None, None)


@pytest.mark.parametrize("status", [Message.Status.PENDING, Message.Status.SENDING, Message.Status.SENT])
def test_it_refuses_to_send_again_a_message_that_is_not_unconfirmed_or_failed(
    unconfirmed: Message, fake_graph: FakeGraph, status: str
) -> None:
    # given
    Message.objects.filter(pk=unconfirmed.pk).update(status=status)
    before = snapshot(unconfirmed)

    # when
    with pytest.raises(SendRefused) as caught:
        outbound.send_again(unconfirmed)

    # then
    assert caught.value.reason == "not_resendable"
    assert snapshot(unconfirmed) == before
    assert len(fake_graph.sends()) == 1


def test_it_refuses_to_send_again_a_message_that_failed_after_meta_accepted_it(
    conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: accepted by Meta, then a failed status webhook (undeliverable)
    message = outbound.send_text(conversation, "Oi")
    Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, failed_at=timezone.now())
    before = snapshot(message)

    # when
    with pytest.raises(SendRefused) as caught:
        outbound.send_again(message)

    # then
    assert caught.value.reason == "not_resendable"
    assert snapshot(message) == before
    assert len(fake_graph.sends()) == 1


def test_it_refuses_to_send_again_an_inbound_message(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="text",
        text="Oi",
        wamid="wamid.IN1",
        status=Message.Status.FAILED,
    )

    # when
    with pytest.raises(SendRefused):
        outbound.send_again(message)

    # then
    assert Message.objects.get(pk=message.pk).status == Message.Status.FAILED
    assert fake_graph.requests == []


def test_it_refuses_to_send_again_when_the_window_has_closed(unconfirmed: Message, fake_graph: FakeGraph) -> None:
    # given
    Conversation.objects.filter(pk=unconfirmed.conversation_id).update(
        last_inbound=timezone.now() - timedelta(hours=25)
    )
    before = snapshot(unconfirmed)

    # when
    with pytest.raises(SendRefused) as caught:
        outbound.send_again(unconfirmed)

    # then
    assert caught.value.reason == "window_closed"
    assert snapshot(unconfirmed) == before
    assert len(fake_graph.sends()) == 1


def test_it_refuses_to_send_again_while_the_inbox_is_paused(unconfirmed: Message, fake_graph: FakeGraph) -> None:
    # given
    Inbox.objects.filter(pk=unconfirmed.conversation.inbox_id).update(sending_paused_reason="token expired")
    before = snapshot(unconfirmed)

    # when
    with pytest.raises(SendRefused) as caught:
        outbound.send_again(unconfirmed)

    # then
    assert caught.value.reason == "paused"
    assert snapshot(unconfirmed) == before
    assert len(fake_graph.sends()) == 1


def test_it_sends_again_from_the_admin(
    admin_client: Any, unconfirmed: Message, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: one unconfirmed message and one already sent
    sent = outbound.send_text(conversation, "Outra")
    assert len(fake_graph.sends()) == 2

    # when
    response = admin_client.post(
        reverse("admin:conversations_message_changelist"),
        {"action": "send_again", "_selected_action": [unconfirmed.pk, sent.pk]},
        follow=True,
    )

    # then
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [
        "1 message queued to be sent again.",
        "1 not sent again: " + str(outbound.NOT_RESENDABLE),
    ]
    unconfirmed.refresh_from_db()
    assert unconfirmed.status == Message.Status.SENT
    assert Message.objects.get(pk=sent.pk).send_attempts == 1
    assert len(fake_graph.sends()) == 3


@pytest.fixture
def layer(settings: Any) -> Iterator[Any]:
    # A fresh prefix keeps parallel runs on one Redis apart; without REDIS_URL this is the
    # in-memory layer of the embedded mode.
    if settings.REDIS_URL:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
            }
        }
    yield _fresh_layer()
    channel_layers.backends.clear()


def _fresh_layer() -> Any:
    channel_layers.backends.clear()
    return get_channel_layer()


def _drain(layer: Any, channel: str) -> list[dict]:
    async def drain() -> list[dict]:
        received, timeout = [], 2.0
        while True:
            try:
                received.append(await asyncio.wait_for(layer.receive(channel), timeout))
            except TimeoutError:
                return received
            timeout = 0.3

    return async_to_sync(drain)()


def test_it_tells_the_console_when_a_send_is_not_confirmed_and_when_it_is_sent_again(
    settings: Any, layer: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: a send whose answer was lost, and the console watching the conversation
    settings.WHATSAPP_HTTP_TIMEOUT = 0.2
    fake_graph.script("messages", graph_error(131000, status=500, delay=0.6))
    message = outbound.send_text(conversation, "Oi")
    settings.WHATSAPP_HTTP_TIMEOUT = 1.0
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(conversation_group(conversation.pk), channel)

    # when: the sweep marks it unconfirmed
    settings.WHATSAPP_SEND_CONFIRM_SECONDS = 0
    tasks.sweep_outbound_messages()

    # then
    expected = {
        "type": "message.updated",
        "message_id": message.pk,
        "conversation_id": conversation.pk,
        "inbox_id": conversation.inbox_id,
        "what": "status",
    }
    assert _drain(layer, channel) == [expected]

    # when: a person sends it again (pending, then sent); a fresh layer instance, as a Redis
    # layer's receive buffers belong to the event loop that first read them
    layer = _fresh_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(conversation_group(conversation.pk), channel)
    outbound.send_again(message)

    # then
    assert _drain(layer, channel) == [expected, expected]
    assert Message.objects.get(pk=message.pk).status == Message.Status.SENT
