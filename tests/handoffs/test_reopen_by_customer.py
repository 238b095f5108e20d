"""A customer who writes again soon after a close (``Inbox.reopen_hours``) continues the same
conversation, back with the bot, with an audit row and a timeline event; later, or with 0
hours, they get a fresh one."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import OwnershipChange
from tests.conftest import text_payload

pytest_plugins = ["tests.conftest_graph"]

Status = Conversation.Status


@pytest.fixture
def write(post_webhook, django_capture_on_commit_callbacks, fake_graph):
    counter = iter(range(1, 100))

    def send(text: str) -> Conversation:
        n = next(counter)
        with django_capture_on_commit_callbacks(execute=True):
            response = post_webhook(text_payload(f"wamid.R{n}", text, timestamp=int(time.time()) + n))
        assert response.status_code == 200
        return Message.objects.get(wamid=f"wamid.R{n}").conversation

    return send


@pytest.mark.django_db
def test_within_the_hours_the_same_conversation_reopens_with_the_bot(team, write) -> None:
    # given
    team.inbox.reopen_hours = 2
    team.inbox.save()
    first = write("oi")
    services.take_over(first, team.ana)
    services.close(first, team.ana)

    # when
    again = write("esqueci de perguntar uma coisa")

    # then
    assert again.pk == first.pk
    first.refresh_from_db()
    assert (first.status, first.assignee, first.closed) == (Status.BOT, None, None)
    change = OwnershipChange.objects.filter(conversation=first).order_by("-created", "-id").first()
    assert (change.action, change.actor, change.from_status, change.to_status, change.from_assignee) == (
        OwnershipChange.Action.REOPEN,
        None,
        Status.CLOSED,
        Status.BOT,
        team.ana,
    )
    events = [m.content["action"] for m in Message.objects.filter(conversation=first, type="event")]
    assert events[-1] == "reopen_by_customer"


@pytest.mark.django_db
def test_the_audit_row_is_written_once(team, write) -> None:
    team.inbox.reopen_hours = 2
    team.inbox.save()
    first = write("oi")
    services.close(first, team.supervisor)
    write("voltei")

    assert services.record_reopen_by_customer(first.pk) is None

    assert OwnershipChange.objects.filter(action=OwnershipChange.Action.REOPEN).count() == 1


@pytest.mark.django_db
def test_after_the_hours_a_fresh_conversation_opens(team, write) -> None:
    # given
    team.inbox.reopen_hours = 2
    team.inbox.save()
    first = write("oi")
    services.close(first, team.supervisor)
    Conversation.objects.filter(pk=first.pk).update(closed=timezone.now() - timedelta(hours=3))

    # when
    again = write("oi de novo")

    # then
    assert again.pk != first.pk
    assert again.status == Status.BOT
    assert Conversation.objects.get(pk=first.pk).status == Status.CLOSED
    assert not OwnershipChange.objects.filter(action=OwnershipChange.Action.REOPEN).exists()


@pytest.mark.django_db
def test_with_zero_hours_a_fresh_conversation_always_opens(team, write) -> None:
    # given
    assert team.inbox.reopen_hours == 0
    first = write("oi")
    services.close(first, team.supervisor)

    # when
    again = write("oi de novo")

    # then
    assert again.pk != first.pk
    assert not OwnershipChange.objects.filter(action=OwnershipChange.Action.REOPEN).exists()
