"""The handoff's ``first_answered``: the first message a person sends the customer after the
handoff (from the console, or from the phone app), once."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from conversations import events, outbound
from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Handoff
from tests.layer_support import drain, subscribe

pytest_plugins = ["tests.conftest_graph"]

Status = Conversation.Status


@pytest.fixture
def taken(team, make_conversation) -> Conversation:
    conversation = make_conversation(Status.BOT, last_inbound=timezone.now())
    services.request_handoff(conversation, reason=Handoff.Reason.CUSTOMER_REQUEST)
    services.take_over(conversation, team.ana)
    return conversation


@pytest.mark.django_db
def test_the_first_attendant_message_marks_the_handoff_answered_once(
    team, taken, fake_graph, django_capture_on_commit_callbacks
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        first = outbound.send_text(taken, "Oi, sou a Ana!", sender=team.ana)
    with django_capture_on_commit_callbacks(execute=True):
        outbound.send_text(taken, "Como posso ajudar?", sender=team.ana)

    # then
    handoff = Handoff.objects.get()
    assert handoff.first_answered == Message.objects.get(pk=first.pk).wa_timestamp
    assert len(fake_graph.sends()) == 2


@pytest.mark.django_db
def test_bot_and_system_messages_do_not_count(team, make_conversation, fake_graph, django_capture_on_commit_callbacks):
    # given
    conversation = make_conversation(Status.BOT, last_inbound=timezone.now())
    services.request_handoff(conversation, reason=Handoff.Reason.CUSTOMER_REQUEST)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        outbound.send_text(conversation, "Já chamo alguém", sender_kind=Message.SenderKind.SYSTEM)
        outbound.send_text(conversation, "Um momento", sender_kind=Message.SenderKind.BOT)

    # then
    assert Handoff.objects.get().first_answered is None


@pytest.mark.django_db
def test_a_closed_handoff_is_not_touched(team, taken, fake_graph, django_capture_on_commit_callbacks) -> None:
    services.close(taken, team.ana)
    taken.refresh_from_db()

    assert services.mark_first_answered(taken.pk) is False
    assert Handoff.objects.get().first_answered is None


@pytest.mark.django_db(transaction=True)
def test_the_open_page_is_told_when_the_handoff_is_first_answered(team, taken, layer, fake_graph) -> None:
    # given: a console listening to the conversation
    channel = subscribe(layer, events.conversation_group(taken.pk))

    # when
    assert services.mark_first_answered(taken.pk) is True

    # then: the packet redraws (a conversation.updated event); a second answer changes nothing
    assert services.mark_first_answered(taken.pk) is False
    received = async_to_sync(drain)(layer, channel)
    assert [event["type"] for event in received] == ["conversation.updated"]


@pytest.mark.django_db(transaction=True)
def test_the_open_page_is_told_when_the_customer_rates(team, taken, layer, fake_graph) -> None:
    # given
    handoff = Handoff.objects.get(conversation=taken)
    channel = subscribe(layer, events.conversation_group(taken.pk))

    # when
    services.record_csat(handoff, 5)

    # then
    received = async_to_sync(drain)(layer, channel)
    assert [event["type"] for event in received] == ["conversation.updated"]
