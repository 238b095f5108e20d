"""The ownership state machine: every transition, who may make it, and what a refusal leaves."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from conversations.models import Conversation
from handoffs import services
from handoffs.models import OwnershipChange
from handoffs.services import TransitionRefused

Status = Conversation.Status
Action = OwnershipChange.Action


def state(conversation: Conversation) -> tuple[str, Any, Any]:
    conversation = Conversation.objects.get(pk=conversation.pk)
    return conversation.status, conversation.assignee_id, conversation.closed


def refused(call: Any, *args: Any, **kwargs: Any) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.mark.django_db
def test_it_lets_an_attendant_take_over_a_queued_conversation(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    result = services.take_over(conversation, team.ana)

    # then
    assert state(conversation) == (Status.ASSIGNED, team.ana.pk, None)
    assert (result.status, result.assignee) == (Status.ASSIGNED, team.ana)
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.ana)
    change = OwnershipChange.objects.get()
    assert (change.conversation, change.action, change.actor) == (conversation, Action.TAKE_OVER, team.ana)
    assert (change.from_status, change.from_assignee, change.to_status, change.to_assignee) == (
        Status.QUEUED,
        None,
        Status.ASSIGNED,
        team.ana,
    )
    assert change.created is not None


@pytest.mark.django_db
def test_it_lets_an_attendant_take_over_from_the_bot(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)

    services.take_over(conversation.pk, team.bruno, reason="cliente pediu")

    assert state(conversation) == (Status.ASSIGNED, team.bruno.pk, None)
    assert OwnershipChange.objects.get().reason == "cliente pediu"


@pytest.mark.django_db
def test_it_lets_a_superuser_outside_the_inbox_take_over(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    services.take_over(conversation, team.admin)

    assert state(conversation) == (Status.ASSIGNED, team.admin.pk, None)


@pytest.mark.django_db
def test_it_refuses_to_take_over_a_conversation_someone_holds(team, make_conversation, english) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    # when
    error = refused(services.take_over, conversation, team.bruno)

    # then
    assert (error.code, error.message) == ("conflict", "Ana has already taken this conversation over.")
    assert state(conversation) == (Status.ASSIGNED, team.ana.pk, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_to_take_over_twice(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    error = refused(services.take_over, conversation, team.ana)

    assert (error.code, error.message) == ("conflict", "You already have this conversation.")
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_take_over_by_an_attendant_of_another_inbox(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.take_over, conversation, team.outsider)

    assert (error.code, error.message) == ("forbidden", "You are not a member of this conversation's inbox.")
    assert state(conversation) == (Status.QUEUED, None, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_take_over_by_an_inactive_member(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    User.objects.filter(pk=team.ana.pk).update(is_active=False)
    team.ana.refresh_from_db()

    error = refused(services.take_over, conversation, team.ana)

    assert error.code == "forbidden"
    assert state(conversation) == (Status.QUEUED, None, None)


@pytest.mark.django_db
def test_it_refuses_to_take_over_a_closed_conversation(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.CLOSED, team.bruno)
    before = state(conversation)

    error = refused(services.take_over, conversation, team.ana)

    assert (error.code, error.message) == ("conflict", "This conversation is closed: reopen it first.")
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_lets_a_supervisor_assign_to_a_member(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    services.assign(conversation, team.supervisor, team.bruno, reason="cliente VIP")

    assert state(conversation) == (Status.ASSIGNED, team.bruno.pk, None)
    change = OwnershipChange.objects.get()
    assert (change.action, change.actor, change.to_assignee, change.reason) == (
        Action.ASSIGN,
        team.supervisor,
        team.bruno,
        "cliente VIP",
    )


@pytest.mark.django_db
def test_it_lets_a_supervisor_reassign_a_held_conversation(team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    services.assign(conversation, team.supervisor, team.bruno)

    assert state(conversation) == (Status.ASSIGNED, team.bruno.pk, None)
    change = OwnershipChange.objects.get()
    assert (change.from_assignee, change.to_assignee) == (team.ana, team.bruno)


@pytest.mark.django_db
def test_it_lets_the_system_assign(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    services.assign(conversation, None, team.ana)

    assert state(conversation) == (Status.ASSIGNED, team.ana.pk, None)
    assert OwnershipChange.objects.get().actor is None


@pytest.mark.django_db
def test_it_refuses_an_assignment_by_an_attendant(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.assign, conversation, team.ana, team.bruno)

    assert (error.code, error.message) == ("forbidden", "Only a supervisor of this inbox can assign conversations.")
    assert state(conversation) == (Status.QUEUED, None, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_an_assignee_outside_the_inbox(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.assign, conversation, team.supervisor, team.outsider)

    assert (error.code, error.message) == ("invalid", "Olga is not an active member of this conversation's inbox.")
    assert state(conversation) == (Status.QUEUED, None, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_an_inactive_assignee(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    team.bruno.is_active = False
    team.bruno.save()

    error = refused(services.assign, conversation, team.supervisor, team.bruno)

    assert error.code == "invalid"
    assert state(conversation) == (Status.QUEUED, None, None)


@pytest.mark.django_db
def test_it_refuses_a_supervisor_of_another_inbox(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED, inbox=team.other_inbox)

    error = refused(services.assign, conversation, team.supervisor, team.outsider)

    assert error.code == "forbidden"
    assert state(conversation) == (Status.QUEUED, None, None)


@pytest.mark.django_db
def test_it_lets_the_holder_transfer_to_another_attendant(team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    services.transfer_to_attendant(conversation, team.ana, team.bruno, reason="assunto financeiro")

    assert state(conversation) == (Status.ASSIGNED, team.bruno.pk, None)
    change = OwnershipChange.objects.get()
    assert (change.action, change.actor, change.from_assignee, change.to_assignee, change.reason) == (
        Action.TRANSFER,
        team.ana,
        team.ana,
        team.bruno,
        "assunto financeiro",
    )


@pytest.mark.django_db
def test_it_refuses_a_transfer_by_another_attendant(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    error = refused(services.transfer_to_attendant, conversation, team.bruno, team.bruno)

    assert (error.code, error.message) == (
        "forbidden",
        "Only the attendant holding this conversation or a supervisor can do this.",
    )
    assert state(conversation) == (Status.ASSIGNED, team.ana.pk, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_to_transfer_a_queued_conversation(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.transfer_to_attendant, conversation, team.supervisor, team.ana)

    assert error.code == "conflict"
    assert state(conversation) == (Status.QUEUED, None, None)


@pytest.mark.django_db
def test_it_refuses_to_transfer_to_the_same_attendant(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    error = refused(services.transfer_to_attendant, conversation, team.ana, team.ana)

    assert (error.code, error.message) == ("conflict", "This conversation is already assigned to Ana.")


@pytest.mark.django_db
def test_it_lets_the_holder_return_a_conversation_to_the_queue(team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    services.transfer_to_queue(conversation, team.ana, reason="fim do turno")

    assert state(conversation) == (Status.QUEUED, None, None)
    change = OwnershipChange.objects.get()
    assert (change.action, change.from_status, change.from_assignee, change.to_status, change.to_assignee) == (
        Action.TO_QUEUE,
        Status.ASSIGNED,
        team.ana,
        Status.QUEUED,
        None,
    )


@pytest.mark.django_db
def test_it_lets_the_bot_hand_off_to_the_queue(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)

    services.transfer_to_queue(conversation, None, reason="pediu um atendente")

    assert state(conversation) == (Status.QUEUED, None, None)
    assert OwnershipChange.objects.get().actor is None


@pytest.mark.django_db
def test_it_refuses_an_attendant_pushing_a_bot_conversation_to_the_queue(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)

    error = refused(services.transfer_to_queue, conversation, team.ana)

    assert error.code == "forbidden"
    assert state(conversation) == (Status.BOT, None, None)


@pytest.mark.django_db
def test_it_refuses_to_queue_a_queued_conversation(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.transfer_to_queue, conversation, team.supervisor)

    assert (error.code, error.message) == ("conflict", "This conversation is already waiting in the queue.")


@pytest.mark.django_db
def test_it_lets_the_holder_return_a_conversation_to_the_bot(team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.bruno)

    services.transfer_to_bot(conversation, team.bruno)

    assert state(conversation) == (Status.BOT, None, None)
    assert OwnershipChange.objects.get().action == Action.TO_BOT


@pytest.mark.django_db
def test_it_lets_a_supervisor_return_a_queued_conversation_to_the_bot(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    services.transfer_to_bot(conversation, team.supervisor)

    assert state(conversation) == (Status.BOT, None, None)


@pytest.mark.django_db
def test_it_refuses_an_attendant_returning_a_queued_conversation_to_the_bot(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.transfer_to_bot, conversation, team.ana)

    assert error.code == "forbidden"
    assert state(conversation) == (Status.QUEUED, None, None)


@pytest.mark.django_db
def test_it_closes_with_a_resolution_note(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    # when
    services.close(conversation, team.ana, resolution="Horário marcado para terça 10h")

    # then: the attendant stays recorded as who handled it
    status, assignee_id, closed = state(conversation)
    assert (status, assignee_id) == (Status.CLOSED, team.ana.pk)
    assert closed is not None
    change = OwnershipChange.objects.get()
    assert (change.action, change.to_status, change.to_assignee, change.reason) == (
        Action.CLOSE,
        Status.CLOSED,
        team.ana,
        "Horário marcado para terça 10h",
    )


@pytest.mark.django_db
def test_it_lets_a_supervisor_close_a_queued_conversation(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    services.close(conversation, team.supervisor, resolution="spam")

    assert state(conversation)[0] == Status.CLOSED


@pytest.mark.django_db
def test_it_refuses_an_attendant_closing_a_conversation_they_do_not_hold(team, make_conversation) -> None:
    queued = make_conversation(Status.QUEUED)
    held = make_conversation(Status.ASSIGNED, team.bruno)

    assert refused(services.close, queued, team.ana).code == "forbidden"
    assert refused(services.close, held, team.ana).code == "forbidden"

    assert state(queued) == (Status.QUEUED, None, None)
    assert state(held) == (Status.ASSIGNED, team.bruno.pk, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_to_close_twice(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.CLOSED, team.ana)
    before = state(conversation)

    error = refused(services.close, conversation, team.ana)

    assert (error.code, error.message) == ("conflict", "This conversation is already closed.")
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_reopens_to_its_last_attendant_and_clears_closed(team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    services.close(conversation, team.ana, resolution="resolvido")

    services.reopen(conversation, team.ana, reason="cliente voltou")

    assert state(conversation) == (Status.ASSIGNED, team.ana.pk, None)
    change = OwnershipChange.objects.filter(action=Action.REOPEN).get()
    assert (change.from_status, change.to_status, change.reason) == (Status.CLOSED, Status.ASSIGNED, "cliente voltou")


@pytest.mark.django_db
def test_it_reopens_to_the_queue_or_the_bot_when_asked(team, make_conversation) -> None:
    first = make_conversation(Status.CLOSED, team.ana)
    second = make_conversation(Status.CLOSED, team.ana)

    services.reopen(first, team.supervisor, to=Status.QUEUED)
    services.reopen(second, None, to=Status.BOT)

    assert state(first) == (Status.QUEUED, None, None)
    assert state(second) == (Status.BOT, None, None)


@pytest.mark.django_db
def test_it_reopens_to_the_queue_for_the_system(team, make_conversation) -> None:
    conversation = make_conversation(Status.CLOSED, team.ana)

    services.reopen(conversation, None)

    assert state(conversation) == (Status.QUEUED, None, None)


@pytest.mark.django_db
def test_it_refuses_a_reopen_by_an_attendant_who_did_not_hold_it(team, make_conversation) -> None:
    conversation = make_conversation(Status.CLOSED, team.ana)
    before = state(conversation)

    error = refused(services.reopen, conversation, team.bruno)

    assert error.code == "forbidden"
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_to_reopen_when_the_customer_has_another_open_conversation(team, make_conversation, english) -> None:
    # given: the customer wrote again after the close, and intake opened a new conversation
    old = make_conversation(Status.CLOSED, team.ana)
    new = make_conversation(Status.BOT, customer=old.customer)
    before = state(old)

    # when
    error = refused(services.reopen, old, team.ana)

    # then
    assert (error.code, error.message) == (
        "conflict",
        f"This customer already has another open conversation in this inbox (#{new.pk}): continue there.",
    )
    assert state(old) == before
    assert state(new) == (Status.BOT, None, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_refuses_to_reopen_an_open_conversation(team, make_conversation, english) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    error = refused(services.reopen, conversation, team.ana)

    assert (error.code, error.message) == ("conflict", "This conversation is open.")


@pytest.mark.django_db
def test_it_reports_the_actions_each_actor_may_attempt(team, make_conversation) -> None:
    queued = make_conversation(Status.QUEUED)
    held = make_conversation(Status.ASSIGNED, team.ana)
    closed = make_conversation(Status.CLOSED, team.ana)

    assert services.available_actions(team.ana, queued) == {Action.TAKE_OVER}
    assert services.available_actions(team.ana, held) == {Action.TRANSFER, Action.TO_QUEUE, Action.TO_BOT, Action.CLOSE}
    assert services.available_actions(team.bruno, held) == set()
    assert services.available_actions(team.ana, closed) == {Action.REOPEN}
    assert services.available_actions(team.outsider, queued) == set()
    assert services.available_actions(team.supervisor, queued) == {
        Action.TAKE_OVER,
        Action.ASSIGN,
        Action.TO_BOT,
        Action.CLOSE,
    }
    assert services.available_actions(team.supervisor, held) == {
        Action.ASSIGN,
        Action.TRANSFER,
        Action.TO_QUEUE,
        Action.TO_BOT,
        Action.CLOSE,
    }


@pytest.mark.django_db
def test_it_refuses_to_assign_to_a_superuser_outside_the_inbox(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    error = refused(services.assign, conversation, team.supervisor, team.admin)

    assert error.code == "invalid"
    assert state(conversation) == (Status.QUEUED, None, None)
