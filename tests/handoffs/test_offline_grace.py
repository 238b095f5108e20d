"""An attendant who goes offline or away keeps their conversations for a grace; after it, the
ones they have not answered go back to the queue and to someone online."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Attendant, Handoff, OwnershipChange

Status = Conversation.Status
Presence = Attendant.Presence


@pytest.fixture
def handed_to_ana(team, make_conversation, settings) -> Conversation:
    """A handoff Ana took over; then she went offline ten minutes ago (grace: five)."""
    settings.HANDOFF_OFFLINE_GRACE_MINUTES = 5
    conversation = make_conversation(Status.BOT)
    services.request_handoff(conversation, reason=Handoff.Reason.CUSTOMER_REQUEST)
    services.take_over(conversation, team.ana)
    gone(team.ana, Presence.OFFLINE, minutes=10)
    return conversation


def gone(user: Any, presence: str, *, minutes: float) -> None:
    Attendant.objects.update_or_create(
        user=user, defaults={"presence": presence, "presence_changed": timezone.now() - timedelta(minutes=minutes)}
    )


def owner(conversation: Conversation) -> tuple[str, Any]:
    conversation.refresh_from_db()
    return conversation.status, conversation.assignee


@pytest.mark.django_db
def test_unanswered_conversations_return_to_the_queue_and_to_someone_online(team, handed_to_ana) -> None:
    # given
    Attendant.objects.create(user=team.bruno, presence=Presence.ONLINE)

    # when
    returned = services.return_from_offline()

    # then
    assert returned == [handed_to_ana.pk]
    assert owner(handed_to_ana) == (Status.ASSIGNED, team.bruno)
    actions = list(
        OwnershipChange.objects.filter(conversation=handed_to_ana)
        .order_by("created", "id")
        .values_list("action", "actor")
    )
    assert actions[-2:] == [(OwnershipChange.Action.TO_QUEUE, None), (OwnershipChange.Action.ASSIGN, None)]


@pytest.mark.django_db
def test_with_nobody_online_they_wait_in_the_queue(team, handed_to_ana) -> None:
    assert services.return_from_offline() == [handed_to_ana.pk]

    assert owner(handed_to_ana) == (Status.QUEUED, None)


@pytest.mark.django_db
def test_away_counts_like_offline(team, handed_to_ana) -> None:
    gone(team.ana, Presence.AWAY, minutes=6)

    assert services.return_from_offline() == [handed_to_ana.pk]


@pytest.mark.django_db
def test_within_the_grace_they_stay(team, handed_to_ana) -> None:
    gone(team.ana, Presence.OFFLINE, minutes=4)

    assert services.return_from_offline() == []
    assert owner(handed_to_ana) == (Status.ASSIGNED, team.ana)


@pytest.mark.django_db
def test_an_online_attendant_keeps_them(team, handed_to_ana) -> None:
    gone(team.ana, Presence.ONLINE, minutes=60)

    assert services.return_from_offline() == []
    assert owner(handed_to_ana) == (Status.ASSIGNED, team.ana)


@pytest.mark.django_db
def test_answered_conversations_stay_with_their_attendant(team, handed_to_ana) -> None:
    # given: Ana had answered before leaving (first_answered is set by the receiver)
    services.mark_first_answered(handed_to_ana.pk)

    # then
    assert services.return_from_offline() == []
    assert owner(handed_to_ana) == (Status.ASSIGNED, team.ana)


@pytest.mark.django_db
def test_a_conversation_taken_from_the_bot_without_handoff_counts_her_messages(team, make_conversation) -> None:
    # given: taken over directly (no handoff record), and answered
    conversation = make_conversation(Status.BOT)
    services.take_over(conversation, team.ana)
    Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.ATTENDANT,
        sender=team.ana,
        type="text",
        text="Oi, sou a Ana",
        wa_timestamp=timezone.now(),
    )
    unanswered = make_conversation(Status.BOT)
    services.take_over(unanswered, team.ana)
    gone(team.ana, Presence.OFFLINE, minutes=30)

    # then
    assert services.return_from_offline() == [unanswered.pk]
    assert owner(conversation) == (Status.ASSIGNED, team.ana)
