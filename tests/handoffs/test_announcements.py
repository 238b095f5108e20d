"""Every ownership change is announced after commit: a live event for the screens and
``ownership_changed`` for the bot. A refusal or a rollback announces nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction

from conversations.events import conversation_group, inbox_group
from conversations.models import Conversation, Message
from handoffs import services, signals
from handoffs.models import OwnershipChange
from handoffs.services import TransitionRefused
from tests.layer_support import drain, subscribe

Status = Conversation.Status


@pytest.fixture
def received() -> Iterator[list[dict]]:
    calls: list[dict] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        calls.append(kwargs)

    signals.ownership_changed.connect(receiver, weak=False)
    yield calls
    signals.ownership_changed.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_it_publishes_the_change_on_the_inbox_and_conversation_groups(team, make_conversation, layer) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)
    on_inbox = subscribe(layer, inbox_group(team.inbox.pk))
    on_conversation = subscribe(layer, conversation_group(conversation.pk))

    # when
    services.take_over(conversation, team.ana)

    # then
    expected = {
        "type": "conversation.updated",
        "conversation_id": conversation.pk,
        "inbox_id": team.inbox.pk,
        "status": "assigned",
        "assignee_id": team.ana.pk,
    }
    # and the timeline's system event ("taken over by Ana") is announced after it
    event = Message.objects.get(conversation=conversation, type="event")
    created = {
        "type": "message.created",
        "message_id": event.pk,
        "conversation_id": conversation.pk,
        "inbox_id": team.inbox.pk,
    }
    assert async_to_sync(drain)(layer, on_inbox) == [expected, created]
    assert async_to_sync(drain)(layer, on_conversation) == [expected, created]


@pytest.mark.django_db(transaction=True)
def test_it_publishes_nothing_for_a_refusal(team, make_conversation, layer) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    channel = subscribe(layer, inbox_group(team.inbox.pk))

    with pytest.raises(TransitionRefused):
        services.take_over(conversation, team.bruno)

    assert async_to_sync(drain)(layer, channel, 0.5) == []


@pytest.mark.django_db(transaction=True)
def test_it_sends_ownership_changed_once_after_commit(team, make_conversation, received) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    # when
    with transaction.atomic():
        services.close(conversation, team.ana, resolution="ok")
        # then: nothing while the transaction is open
        assert received == []

    change = OwnershipChange.objects.get()
    assert received == [
        {
            "conversation_id": conversation.pk,
            "inbox_id": team.inbox.pk,
            "change_id": change.pk,
            "action": "close",
            "from_status": "assigned",
            "to_status": "closed",
            "assignee_id": team.ana.pk,
            "actor_id": team.ana.pk,
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_when_the_transaction_rolls_back(team, make_conversation, received) -> None:
    conversation = make_conversation(Status.QUEUED)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.take_over(conversation, team.ana)
        raise RuntimeError("the caller's transaction fails later")

    assert received == []
    assert Conversation.objects.get(pk=conversation.pk).status == Status.QUEUED
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_for_a_refusal(team, make_conversation, received) -> None:
    conversation = make_conversation(Status.QUEUED)

    with pytest.raises(TransitionRefused):
        services.assign(conversation, team.ana, team.bruno)

    assert received == []
