"""Automatic assignment: to the online member of the inbox with the fewest open conversations
under their capacity, fair among equals, in queue order; never twice, never over capacity, even
with two runs at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conversations.models import Conversation
from handoffs import services
from handoffs.models import Attendant, Handoff, OwnershipChange
from tests.race_support import run_together

Status = Conversation.Status
Online, Away, Offline = Attendant.Presence.ONLINE, Attendant.Presence.AWAY, Attendant.Presence.OFFLINE


def present(user: Any, presence: str = Online, *, capacity: int = 5, last_assigned: Any = None) -> Attendant:
    return Attendant.objects.create(
        user=user, presence=presence, capacity=capacity, last_assigned=last_assigned, presence_changed=timezone.now()
    )


def queued(make_conversation: Any, count: int = 1, **extra: Any) -> list[Conversation]:
    start = timezone.now() - timedelta(minutes=60)
    return [make_conversation(Status.QUEUED, queued_since=start + timedelta(minutes=i), **extra) for i in range(count)]


def owner(conversation: Conversation) -> Any:
    conversation = Conversation.objects.get(pk=conversation.pk)
    return conversation.status, conversation.assignee


@pytest.mark.django_db
def test_it_gives_the_conversation_to_the_attendant_with_the_fewest_open(team, make_conversation) -> None:
    # given
    present(team.ana)
    present(team.bruno)
    make_conversation(Status.ASSIGNED, assignee=team.ana)
    make_conversation(Status.ASSIGNED, assignee=team.ana)
    make_conversation(Status.ASSIGNED, assignee=team.bruno)
    [waiting] = queued(make_conversation)

    # when
    given = services.assign_queue(team.inbox.pk)

    # then
    assert given == [(waiting.pk, team.bruno.pk)]
    assert owner(waiting) == (Status.ASSIGNED, team.bruno)
    change = OwnershipChange.objects.get(conversation=waiting)
    assert (change.action, change.actor, change.to_assignee) == (OwnershipChange.Action.ASSIGN, None, team.bruno)
    assert Attendant.objects.get(user=team.bruno).last_assigned is not None


@pytest.mark.django_db
def test_it_never_gives_more_than_the_capacity(team, make_conversation) -> None:
    # given
    present(team.ana, capacity=2)
    make_conversation(Status.ASSIGNED, assignee=team.ana)
    first, second = queued(make_conversation, 2)

    # when
    given = services.assign_queue(team.inbox.pk)

    # then
    assert given == [(first.pk, team.ana.pk)]
    assert owner(second) == (Status.QUEUED, None)
    assert Conversation.objects.assigned_to(team.ana).count() == 2


@pytest.mark.django_db
def test_it_is_fair_among_equals(team, make_conversation) -> None:
    # given: both with nothing open; Bruno received one an hour ago, Ana ten minutes ago
    now = timezone.now()
    present(team.ana, last_assigned=now - timedelta(minutes=10))
    present(team.bruno, last_assigned=now - timedelta(hours=1))
    first, second, third = queued(make_conversation, 3)

    # when
    given = services.assign_queue(team.inbox.pk)

    # then: Bruno first, then Ana (Bruno now has one open), then Bruno again
    assert given == [(first.pk, team.bruno.pk), (second.pk, team.ana.pk), (third.pk, team.bruno.pk)]


@pytest.mark.django_db
def test_someone_never_assigned_goes_first_among_equals(team, make_conversation) -> None:
    present(team.ana, last_assigned=timezone.now() - timedelta(days=3))
    present(team.bruno)
    [waiting] = queued(make_conversation)

    assert services.assign_queue(team.inbox.pk) == [(waiting.pk, team.bruno.pk)]


@pytest.mark.django_db
def test_offline_and_away_attendants_get_nothing(team, make_conversation) -> None:
    # given
    present(team.ana, Away)
    present(team.bruno, Offline)
    [waiting] = queued(make_conversation)

    # when
    given = services.assign_queue(team.inbox.pk)

    # then
    assert given == []
    assert owner(waiting) == (Status.QUEUED, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_members_of_other_inboxes_get_nothing_and_supervisors_may(team, make_conversation) -> None:
    present(team.outsider)
    present(team.supervisor)
    [waiting] = queued(make_conversation)

    assert services.assign_queue(team.inbox.pk) == [(waiting.pk, team.supervisor.pk)]


@pytest.mark.django_db
def test_it_follows_the_queue_order_priority_first(team, make_conversation) -> None:
    # given
    present(team.ana, capacity=1)
    older, newer_urgent = queued(make_conversation, 2)
    Conversation.objects.filter(pk=newer_urgent.pk).update(priority=3)

    # when
    given = services.assign_queue(team.inbox.pk)

    # then
    assert given == [(newer_urgent.pk, team.ana.pk)]
    assert services.queue_position(older) == 1


@pytest.mark.django_db
def test_it_leaves_conversations_answered_from_the_phone_app(team, make_conversation) -> None:
    # given
    present(team.ana)
    paused, waiting = queued(make_conversation, 2)
    Handoff.objects.create(conversation=paused, reason=Handoff.Reason.PHONE_APP)

    # when
    given = services.assign_queue()

    # then
    assert given == [(waiting.pk, team.ana.pk)]
    assert owner(paused) == (Status.QUEUED, None)


@pytest.mark.django_db
def test_going_online_assigns_the_queue(team, make_conversation, django_capture_on_commit_callbacks) -> None:
    [waiting] = queued(make_conversation)

    with django_capture_on_commit_callbacks(execute=True):
        services.set_presence(team.ana, Online)

    assert owner(waiting) == (Status.ASSIGNED, team.ana)


@pytest.mark.django_db
def test_a_close_makes_room_for_the_next(team, make_conversation, django_capture_on_commit_callbacks) -> None:
    # given: Ana is full
    present(team.ana, capacity=1)
    holding = make_conversation(Status.ASSIGNED, assignee=team.ana)
    [waiting] = queued(make_conversation)
    assert services.assign_queue(team.inbox.pk) == []

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.close(holding, team.ana)

    # then
    assert owner(waiting) == (Status.ASSIGNED, team.ana)


@pytest.mark.django_db
def test_the_position_and_estimate_follow_recent_handling(team, make_conversation) -> None:
    # given: three handoffs this week handled in 2, 4 and 30 minutes; two online attendants
    now = timezone.now()
    for minutes in (2, 4, 30):
        done = make_conversation(Status.CLOSED)
        Handoff.objects.create(
            conversation=done,
            reason=Handoff.Reason.CUSTOMER_REQUEST,
            requested=now - timedelta(hours=1),
            assigned=now - timedelta(hours=1) + timedelta(minutes=minutes),
            closed=now,
        )
    present(team.ana, Away)
    present(team.bruno, Away)
    first, second, third = queued(make_conversation, 3)

    # then
    assert [services.queue_position(c) for c in (first, second, third)] == [1, 2, 3]
    assert services.wait_estimate(team.inbox.pk, position=1) == timedelta(minutes=4)
    assert services.wait_estimate(team.inbox.pk, position=3) == timedelta(minutes=12)
    Attendant.objects.update(presence=Online)
    assert services.wait_estimate(team.inbox.pk, position=3) == timedelta(minutes=8)
    assert services.wait_estimate(team.other_inbox.pk) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_two_runs_at_once_never_assign_twice_nor_over_capacity(team, make_conversation, attempt) -> None:
    # given: eight waiting, room for five
    present(team.ana, capacity=3)
    present(team.bruno, capacity=2)
    waiting = queued(make_conversation, 8)

    # when
    results = run_together(lambda: services.assign_queue(team.inbox.pk), lambda: services.assign_queue())

    # then
    assert not [r for r in results if isinstance(r, Exception)], results
    given = results[0] + results[1]
    assert len(given) == 5
    assert len({conversation_id for conversation_id, _ in given}) == 5
    assert Conversation.objects.assigned_to(team.ana).count() == 3
    assert Conversation.objects.assigned_to(team.bruno).count() == 2
    assert OwnershipChange.objects.filter(action=OwnershipChange.Action.ASSIGN).count() == 5
    # The five longest waiting were given; the newest three still wait.
    assert set(Conversation.objects.waiting().values_list("pk", flat=True)) == {c.pk for c in waiting[5:]}


@pytest.mark.django_db
def test_the_command_assigns_by_hand(team, make_conversation) -> None:
    from io import StringIO

    from django.core.management import call_command

    present(team.ana)
    [waiting] = queued(make_conversation)
    out = StringIO()

    call_command("assign_queue", "--offline", "--inbox", str(team.inbox.pk), stdout=out)

    assert owner(waiting) == (Status.ASSIGNED, team.ana)
    assert f"#{waiting.pk} -> user {team.ana.pk}" in out.getvalue()
    assert "assigned: 1" in out.getvalue()
