"""The console's writes in conversations.services: internal notes, system events (one per
ownership change), labels and customer notes; each announced once, after commit."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import transaction

from conversations import services
from conversations.events import conversation_group, inbox_group
from conversations.models import Conversation, Customer, Inbox, Label, Membership, Message
from handoffs import services as handoffs
from tests.layer_support import drain, subscribe

Status = Conversation.Status


@pytest.fixture
def ana(inbox: Inbox) -> User:
    user = User.objects.create_user("ana", first_name="Ana", last_name="Souza")
    Membership.objects.create(user=user, inbox=inbox)
    return user


@pytest.fixture
def conversation(inbox: Inbox) -> Conversation:
    customer = Customer.objects.create(wa_id="5511987654321", name="Maria")
    return Conversation.objects.create(inbox=inbox, customer=customer, status=Status.QUEUED)


@pytest.mark.django_db
def test_it_stores_an_internal_note_that_is_never_sent(conversation: Conversation, ana: User) -> None:
    # when
    note = services.add_note(conversation, ana, "  Cliente pediu retorno amanhã  ")

    # then
    note.refresh_from_db()
    assert (note.direction, note.type, note.sender_kind, note.sender, note.text) == (
        Message.Direction.INTERNAL,
        "note",
        Message.SenderKind.ATTENDANT,
        ana,
        "Cliente pediu retorno amanhã",
    )
    assert (note.wamid, note.payload, note.send_attempts) == (None, {}, 0)
    # a note does not move the conversation up the lists as if the customer had written
    assert Conversation.objects.get(pk=conversation.pk).last_message is None


@pytest.mark.django_db
def test_it_refuses_an_empty_note(conversation: Conversation, ana: User) -> None:
    with pytest.raises(ValueError):
        services.add_note(conversation, ana, "   ")
    assert Message.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transition", "expected"),
    [
        ("take_over", {"action": "take_over", "to_status": "assigned", "to_name": "Ana Souza", "reason": ""}),
        ("to_queue", {"action": "to_queue", "to_status": "queued", "to_name": "", "reason": "sem estoque"}),
        ("close", {"action": "close", "to_status": "closed", "to_name": "", "reason": "resolvido"}),
    ],
)
def test_it_writes_one_system_event_per_ownership_change(
    conversation: Conversation, ana: User, transition: str, expected: dict
) -> None:
    # given
    if transition != "take_over":
        handoffs.take_over(conversation, ana)
        Message.objects.all().delete()

    # when
    if transition == "take_over":
        handoffs.take_over(conversation, ana)
    elif transition == "to_queue":
        handoffs.transfer_to_queue(conversation, ana, reason="sem estoque")
    else:
        handoffs.close(conversation, ana, resolution="resolvido")

    # then
    [event] = Message.objects.filter(conversation=conversation)
    assert (event.direction, event.type, event.sender_kind, event.sender, event.text) == (
        Message.Direction.INTERNAL,
        "event",
        Message.SenderKind.SYSTEM,
        None,
        "",
    )
    assert event.content == {**expected, "actor": ana.pk, "actor_name": "Ana Souza"}


@pytest.mark.django_db
def test_it_records_the_system_as_the_actor_of_an_automatic_change(conversation: Conversation, ana: User) -> None:
    handoffs.assign(conversation, None, ana)

    [event] = Message.objects.filter(conversation=conversation)
    assert event.content == {
        "action": "assign",
        "actor": None,
        "actor_name": "",
        "to_status": "assigned",
        "to_name": "Ana Souza",
        "reason": "",
    }


@pytest.mark.django_db
def test_a_refused_transition_writes_no_event(conversation: Conversation, ana: User) -> None:
    handoffs.take_over(conversation, ana)
    Message.objects.all().delete()

    with pytest.raises(handoffs.TransitionRefused):
        handoffs.take_over(conversation, ana)

    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_announces_a_note_after_commit_only(conversation: Conversation, ana: User, layer: Any) -> None:
    # given
    on_conversation = subscribe(layer, conversation_group(conversation.pk))

    # when: one note rolled back, one committed
    with pytest.raises(RuntimeError), transaction.atomic():
        services.add_note(conversation, ana, "rascunho")
        raise RuntimeError
    note = services.add_note(conversation, ana, "valeu")

    # then
    assert async_to_sync(drain)(layer, on_conversation) == [
        {
            "type": "message.created",
            "message_id": note.pk,
            "conversation_id": conversation.pk,
            "inbox_id": conversation.inbox_id,
        }
    ]
    assert list(Message.objects.values_list("text", flat=True)) == ["valeu"]


@pytest.mark.django_db
def test_it_sets_labels_of_the_inbox_and_global_ones(conversation: Conversation, ana: User) -> None:
    vip = Label.objects.create(inbox=conversation.inbox, name="VIP")
    urgent = Label.objects.create(inbox=None, name="Urgente")

    assert services.set_labels(conversation, [vip, urgent.pk], ana) == sorted([vip.pk, urgent.pk])
    assert services.set_labels(conversation, [urgent], ana) == [urgent.pk]

    assert list(conversation.labels.all()) == [urgent]


@pytest.mark.django_db
def test_it_refuses_a_label_of_another_inbox_and_changes_nothing(conversation: Conversation, ana: User) -> None:
    vip = Label.objects.create(inbox=conversation.inbox, name="VIP")
    conversation.labels.add(vip)
    other = Inbox.objects.create(name="B", phone_number_id="PN_B")
    foreign = Label.objects.create(inbox=other, name="Alheio")

    with pytest.raises(ValueError):
        services.set_labels(conversation, [vip, foreign], ana)

    assert list(conversation.labels.all()) == [vip]


@pytest.mark.django_db(transaction=True)
def test_it_announces_labels_and_customer_notes_to_the_inbox(conversation: Conversation, ana: User, layer: Any) -> None:
    # given
    vip = Label.objects.create(inbox=conversation.inbox, name="VIP")
    closed = Conversation.objects.create(inbox=conversation.inbox, customer=conversation.customer, status="closed")
    on_inbox = subscribe(layer, inbox_group(conversation.inbox_id))

    # when
    services.set_labels(conversation, [vip], ana)
    services.set_customer_notes(conversation.customer, "  Prefere ligação  ", ana)

    # then: the open conversation redraws twice; the closed one is left alone
    received = async_to_sync(drain)(layer, on_inbox)
    assert [(e["type"], e["conversation_id"]) for e in received] == [
        ("conversation.updated", conversation.pk),
        ("conversation.updated", conversation.pk),
    ]
    assert closed.pk not in [e["conversation_id"] for e in received]
    assert Customer.objects.get(pk=conversation.customer_id).notes == "Prefere ligação"
