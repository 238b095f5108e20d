"""Someone at the business answers from the WhatsApp Business app (an echo): the bot stops, as
with a takeover, and automatic assignment leaves the conversation to that person."""

from __future__ import annotations

import time

import pytest

from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Attendant, Handoff, OwnershipChange
from tests.conftest import envelope, text_payload

pytest_plugins = ["tests.conftest_graph"]

Status = Conversation.Status


def echo_payload(wamid: str, text: str, timestamp: int) -> dict:
    body = envelope(
        {
            "message_echoes": [
                {
                    "from": "5511900000000",
                    "to": "5511987654321",
                    "id": wamid,
                    "timestamp": str(timestamp),
                    "type": "text",
                    "text": {"body": text},
                }
            ]
        }
    )
    body["entry"][0]["changes"][0]["field"] = "smb_message_echoes"
    return body


@pytest.fixture
def deliver(post_webhook, django_capture_on_commit_callbacks, fake_graph):
    def post(body: dict) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            assert post_webhook(body).status_code == 200

    return post


@pytest.mark.django_db
def test_an_echo_pauses_the_bot(team, deliver) -> None:
    # given: an online attendant, and a customer talking to the bot
    Attendant.objects.create(user=team.ana, presence=Attendant.Presence.ONLINE)
    now = int(time.time())
    deliver(text_payload("wamid.C1", "oi, vocês abrem amanhã?", timestamp=now))
    conversation = Conversation.objects.get()
    assert conversation.status == Status.BOT

    # when
    deliver(echo_payload("wamid.E1", "Abrimos sim, às 9h!", now + 5))

    # then
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.QUEUED, None)
    handoff = Handoff.objects.get()
    assert handoff.reason == Handoff.Reason.PHONE_APP
    assert handoff.first_answered == Message.objects.get(wamid="wamid.E1").wa_timestamp
    change = OwnershipChange.objects.get()
    assert (change.action, change.actor, change.from_status) == (OwnershipChange.Action.HANDOFF, None, Status.BOT)
    events = [m.content["action"] for m in Message.objects.filter(conversation=conversation, type="event")]
    assert events == ["bot_paused_by_phone_app"]
    # Nobody in the console is given it: a person is answering from the phone.
    assert services.assign_queue() == []


@pytest.mark.django_db
def test_a_second_echo_changes_nothing_more(team, deliver) -> None:
    now = int(time.time())
    deliver(text_payload("wamid.C1", "oi", timestamp=now))
    deliver(echo_payload("wamid.E1", "Olá!", now + 5))
    first = Handoff.objects.get().first_answered

    deliver(echo_payload("wamid.E2", "Tudo bem?", now + 10))

    handoff = Handoff.objects.get()
    assert handoff.first_answered == first
    assert OwnershipChange.objects.count() == 1


@pytest.mark.django_db
def test_an_echo_that_opens_a_conversation_leaves_it_to_the_phone(team, deliver) -> None:
    # given
    Attendant.objects.create(user=team.ana, presence=Attendant.Presence.ONLINE)

    # when: the business writes first from the phone
    deliver(echo_payload("wamid.E1", "Oi Maria, seu horário está confirmado", int(time.time())))

    # then
    conversation = Conversation.objects.get()
    assert conversation.status == Status.QUEUED
    assert Handoff.objects.get().reason == Handoff.Reason.PHONE_APP
    assert services.assign_queue() == []


@pytest.mark.django_db
def test_an_echo_on_an_assigned_conversation_changes_no_owner(team, deliver) -> None:
    now = int(time.time())
    deliver(text_payload("wamid.C1", "oi", timestamp=now))
    conversation = Conversation.objects.get()
    services.take_over(conversation, team.ana)

    deliver(echo_payload("wamid.E1", "Oi!", now + 5))

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.ana)
    assert not Handoff.objects.exists()
