"""request_handoff: the bot hands a conversation to people with a packet."""

from __future__ import annotations

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Attendant, Handoff, OwnershipChange
from handoffs.services import TransitionRefused

Status = Conversation.Status
Reason = Handoff.Reason


def customer_says(conversation: Conversation, *texts: str) -> None:
    for index, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.IN,
            sender_kind=Message.SenderKind.CUSTOMER,
            type="text",
            text=text,
            wamid=f"wamid.{conversation.pk}.{index}",
            wa_timestamp=timezone.now(),
        )


@pytest.mark.django_db
def test_it_moves_a_bot_conversation_to_the_queue_with_a_packet(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.BOT)
    customer_says(conversation, "oi", "quero falar com uma pessoa")

    # when
    handoff = services.request_handoff(
        conversation, reason=Reason.CUSTOMER_REQUEST, priority=2, detail="asked twice", lead={"name": "Maria"}
    )

    # then
    conversation.refresh_from_db()
    assert (conversation.status, conversation.priority) == (Status.QUEUED, 2)
    assert conversation.queued_since is not None
    assert (handoff.reason, handoff.priority, handoff.reason_text, handoff.lead) == (
        Reason.CUSTOMER_REQUEST,
        2,
        "asked twice",
        {"name": "Maria"},
    )
    assert handoff.closed is None and handoff.assigned is None
    assert "quero falar com uma pessoa" in handoff.summary
    assert "Maria" in handoff.summary
    change = OwnershipChange.objects.get()
    assert (change.action, change.actor, change.from_status, change.to_status) == (
        OwnershipChange.Action.HANDOFF,
        None,
        Status.BOT,
        Status.QUEUED,
    )
    event = Message.objects.get(conversation=conversation, type="event")
    assert event.content["action"] == "handoff"
    assert (event.content["reason"], event.content["priority"]) == (Reason.CUSTOMER_REQUEST, 2)
    assert event.content["reason_label"]


@pytest.mark.django_db
def test_it_keeps_a_given_summary(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)

    handoff = services.request_handoff(conversation, reason=Reason.MODEL, summary="Wants a refund of R$ 50.")

    assert handoff.summary == "Wants a refund of R$ 50."


@pytest.mark.django_db
def test_a_second_request_updates_the_open_handoff_and_raises_the_priority(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.BOT)
    first = services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST, priority=1, lead={"name": "M"})

    # when
    second = services.request_handoff(
        conversation, reason=Reason.COMPLAINT, priority=3, detail="angry", lead={"service": "corte"}
    )

    # then
    assert second.pk == first.pk
    assert Handoff.objects.count() == 1
    second.refresh_from_db()
    assert (second.reason, second.priority, second.lead) == (
        Reason.CUSTOMER_REQUEST,
        3,
        {"name": "M", "service": "corte"},
    )
    assert "angry" in second.reason_text
    conversation.refresh_from_db()
    assert (conversation.status, conversation.priority) == (Status.QUEUED, 3)
    assert OwnershipChange.objects.count() == 1


@pytest.mark.django_db
def test_a_lower_priority_never_lowers_it(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)
    services.request_handoff(conversation, reason=Reason.EMERGENCY, priority=3)

    handoff = services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST, priority=0)

    assert handoff.priority == 3
    assert Conversation.objects.get(pk=conversation.pk).priority == 3


@pytest.mark.django_db
def test_it_changes_no_owner_of_an_assigned_conversation(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)

    # when
    handoff = services.request_handoff(conversation, reason=Reason.TOPIC)

    # then
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.ana)
    assert handoff.assignee == team.ana and handoff.assigned is not None
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_closed_conversation_and_changes_nothing(team, make_conversation) -> None:
    conversation = make_conversation(Status.CLOSED)

    with pytest.raises(TransitionRefused) as caught:
        services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    assert caught.value.code == "conflict"
    assert not Handoff.objects.exists()
    assert not OwnershipChange.objects.exists()
    assert Conversation.objects.get(pk=conversation.pk).status == Status.CLOSED


@pytest.mark.django_db
def test_it_refuses_an_unknown_reason(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)

    with pytest.raises(TransitionRefused):
        services.request_handoff(conversation, reason="bored")

    assert Conversation.objects.get(pk=conversation.pk).status == Status.BOT
    assert not Handoff.objects.exists()


@pytest.mark.django_db
def test_the_handoff_records_assignment_and_close_in_the_transitions(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.BOT)
    handoff = services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    # when
    services.take_over(conversation, team.ana)
    services.transfer_to_attendant(conversation, team.ana, team.bruno)
    handoff.refresh_from_db()
    first_assigned = handoff.assigned
    services.close(conversation, team.bruno)

    # then: the first assignment is kept, the close ends the handoff
    handoff.refresh_from_db()
    assert (handoff.assignee, handoff.assigned) == (team.ana, first_assigned)
    assert first_assigned is not None
    assert handoff.closed is not None


@pytest.mark.django_db
def test_returning_to_the_bot_ends_the_handoff(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)
    handoff = services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    services.transfer_to_bot(conversation, team.supervisor)

    handoff.refresh_from_db()
    assert handoff.closed is not None and handoff.assigned is None
    # A new request after that starts a new handoff.
    again = services.request_handoff(conversation, reason=Reason.COMPLAINT)
    assert again.pk != handoff.pk


@pytest.mark.django_db
def test_it_assigns_automatically_after_commit(team, make_conversation, django_capture_on_commit_callbacks) -> None:
    # given
    Attendant.objects.create(user=team.ana, presence=Attendant.Presence.ONLINE)
    conversation = make_conversation(Status.BOT)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    # then
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.ana)
    assert Handoff.objects.get().assignee == team.ana


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_handoffs_at_once_make_one_packet_and_one_change(team, make_conversation) -> None:
    # given: the bot hands off while an echo from the phone app pauses it
    from tests.handoffs.test_races import run_together

    conversation = make_conversation(Status.BOT)

    # when
    results = run_together(
        lambda: services.request_handoff(conversation.pk, reason=Reason.COMPLAINT, priority=2),
        lambda: services.request_handoff(conversation.pk, reason=Reason.PHONE_APP, priority=1),
    )

    # then
    assert all(isinstance(r, Handoff) for r in results), results
    assert results[0].pk == results[1].pk
    handoff = Handoff.objects.get()
    assert handoff.priority == 2
    assert OwnershipChange.objects.filter(action=OwnershipChange.Action.HANDOFF).count() == 1
    conversation.refresh_from_db()
    assert (conversation.status, conversation.priority) == (Status.QUEUED, 2)
