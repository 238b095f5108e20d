"""Two actors at once, on real PostgreSQL connections: one winner, one clear refusal, never a 500
and never two owners."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from django.db import connection, transaction

from conversations import services as conversation_services
from conversations.models import Conversation
from handoffs import services
from handoffs.models import OwnershipChange
from handoffs.services import TransitionRefused
from tests.race_support import run_together

Status = Conversation.Status


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))
def test_it_gives_a_conversation_to_one_of_two_attendants_taking_it_at_once(team, make_conversation, attempt) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    results = run_together(
        lambda: services.take_over(conversation.pk, team.ana),
        lambda: services.take_over(conversation.pk, team.bruno),
    )

    # then
    winners = [r for r in results if isinstance(r, Conversation)]
    losers = [r for r in results if isinstance(r, TransitionRefused)]
    assert (len(winners), len(losers)) == (1, 1), results
    winner = winners[0].assignee
    assert losers[0].code == "conflict"
    assert winner.first_name in losers[0].message
    current = Conversation.objects.get(pk=conversation.pk)
    assert (current.status, current.assignee) == (Status.ASSIGNED, winner)
    change = OwnershipChange.objects.get()
    assert (change.from_status, change.to_assignee) == (Status.QUEUED, winner)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_lets_a_supervisor_assignment_and_a_take_over_apply_one_after_the_other(team, make_conversation) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    results = run_together(
        lambda: services.take_over(conversation.pk, team.ana),
        lambda: services.assign(conversation.pk, team.supervisor, team.bruno),
    )

    # then: the audit trail tells the same story as the row, whichever came first
    current = Conversation.objects.get(pk=conversation.pk)
    changes = list(OwnershipChange.objects.order_by("id"))
    assert changes[-1].to_assignee == current.assignee
    assert changes[0].from_status == Status.QUEUED
    for earlier, later in itertools.pairwise(changes):
        assert (later.from_status, later.from_assignee) == (earlier.to_status, earlier.to_assignee)
    assert all(isinstance(r, Conversation | TransitionRefused) for r in results), results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_reopen_racing_intake_opening_a_new_conversation(team, make_conversation, english) -> None:
    # given: a closed conversation, and intake about to open a new one for the same customer
    old = make_conversation(Status.CLOSED, team.ana)
    opened = threading.Event()
    new_pk: list[int] = []

    def intake() -> None:
        try:
            with transaction.atomic():
                conversation, _created = conversation_services.open_conversation(team.inbox, old.customer)
                new_pk.append(conversation.pk)
                opened.set()
                # Still uncommitted: the reopen's check cannot see it, only the constraint can.
                time.sleep(1.0)
        finally:
            opened.set()
            connection.close()

    thread = threading.Thread(target=intake)
    thread.start()
    assert opened.wait(10)

    # when
    with pytest.raises(TransitionRefused) as caught:
        services.reopen(old.pk, team.ana)
    thread.join(10)

    # then: a clear refusal (never a 500), and only the new conversation is open
    assert caught.value.code == "conflict"
    assert caught.value.message == (
        f"This customer already has another open conversation in this inbox (#{new_pk[0]}): continue there."
    )
    assert Conversation.objects.get(pk=old.pk).status == Status.CLOSED
    assert list(Conversation.objects.open().values_list("pk", flat=True)) == new_pk
    assert not OwnershipChange.objects.exists()
