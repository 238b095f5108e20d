"""Catch-up: a console that missed live events (Redis restarted while rows were committed, or
its socket was down) gets everything on its next sync, each element exactly once."""

# The fixtures are imported from live_helpers, and pytest passes them back as arguments.
# ruff: noqa: F811

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django.utils import timezone

from conversations import events, services
from conversations.models import Conversation, Message
from handoffs import services as handoffs
from tests.console.live_helpers import (  # noqa: F401 -- fixtures
    Screen,
    connect,
    frames,
    layer,
    live,
    make_conversation,
    sync,
    team,
)

pytestmark = pytest.mark.django_db(transaction=True)
Status = Conversation.Status


def _note(conversation: Conversation, author, text: str) -> Message:
    with transaction.atomic():
        return services.add_note(conversation, author, text)


def _edit(message: Message, text: str) -> None:
    with transaction.atomic():
        message.text = text
        message.save(update_fields=["text", "updated"])
        events.message_updated(message, "edit")


@pytest.fixture
def publishing_down(monkeypatch: pytest.MonkeyPatch):
    """Every live event is lost (as while Redis restarts); the rows still commit."""
    lost: list[dict] = []

    def drop(groups, event) -> None:
        lost.append(event)

    def down() -> list[dict]:
        monkeypatch.setattr(events, "_deliver", drop)
        return lost

    return down


def test_it_catches_up_on_everything_committed_while_live_events_were_lost(
    live, team, make_conversation, publishing_down
) -> None:
    # given: Ana's page shows a conversation with two messages, and the queue
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")
    waiting = make_conversation(Status.QUEUED, name="João Lima")
    first = _note(conversation, team.bruno, "primeira")
    second = _note(conversation, team.bruno, "segunda")
    screen = Screen(conversation.pk, messages=[first.pk, second.pk], rows=[conversation.pk, waiting.pk])

    async def scenario() -> tuple[list[str], list[str]]:
        ana, _ = await connect(team.ana)
        for frame in await sync(ana, conversation.pk, after=screen.highest()):
            screen.apply(frame)
        # when: events are lost while these commit
        lost = await sync_to_async(publishing_down)()
        new = [await sync_to_async(_note)(conversation, team.bruno, f"nova {n}") for n in range(5)]
        await sync_to_async(_edit)(second, "segunda (editada)")
        await sync_to_async(handoffs.take_over)(waiting, team.bruno)
        live_frames = await frames(ana)
        # then the page's periodic sync
        catch_up = await sync(ana, conversation.pk, after=screen.highest(), since=screen.cursor)
        for frame in catch_up:
            screen.apply(frame)
        await ana.disconnect()
        return lost, live_frames, new

    lost, live_frames, new = async_to_sync(scenario)()

    # then: nothing came live, everything came with the sync, once, in order
    assert len(lost) >= 7
    assert live_frames == []
    expected = [first.pk, second.pk, *[m.pk for m in new]]
    assert screen.timeline == [f"message-{pk}" for pk in expected]
    assert len(set(screen.timeline)) == len(screen.timeline)
    assert "nova 4" in screen.text(f"message-{new[4].pk}")
    assert "segunda (editada)" in screen.text(f"message-{second.pk}")
    # The conversation Bruno took left Ana's queue; hers is redrawn.
    assert screen.rows == [f"conversation-row-{conversation.pk}"]
    assert "Maria Souza" in screen.text(f"conversation-row-{conversation.pk}")


def test_it_changes_nothing_when_the_sync_repeats_what_came_live(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    screen = Screen(conversation.pk)

    async def scenario() -> None:
        ana, _ = await connect(team.ana)
        for frame in await sync(ana, conversation.pk):
            screen.apply(frame)
        for n in range(3):
            await sync_to_async(_note)(conversation, team.bruno, f"ao vivo {n}")
        for frame in await frames(ana):
            screen.apply(frame)
        before = list(screen.timeline)
        # when: the sync's overlap sends the same messages again
        repeated = await sync(ana, conversation.pk, after=0, since=screen.cursor)
        for frame in repeated:
            screen.apply(frame)
        await ana.disconnect()
        return before, repeated

    before, repeated = async_to_sync(scenario)()

    # then
    assert len(before) == 3
    assert all(f'id="{element}"' in "".join(repeated) for element in before)
    assert screen.timeline == before


def test_it_catches_up_after_a_reconnect(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    screen = Screen(conversation.pk)

    async def scenario() -> list[Message]:
        ana, _ = await connect(team.ana)
        for frame in await sync(ana, conversation.pk):
            screen.apply(frame)
        await ana.disconnect()
        # when: messages arrive while the socket is down (a deploy, a network blip)
        missed = [await sync_to_async(_note)(conversation, team.bruno, f"perdida {n}") for n in range(3)]
        ana, _ = await connect(team.ana)
        for frame in await sync(ana, conversation.pk, after=screen.highest(), since=screen.cursor):
            screen.apply(frame)
        await ana.disconnect()
        return missed

    missed = async_to_sync(scenario)()

    # then
    assert screen.timeline == [f"message-{m.pk}" for m in missed]


def test_it_catches_a_message_committed_late_with_a_lower_id(live, team, make_conversation) -> None:
    # given: the page already shows a message with a higher id than one committed after it
    # (ids are taken at insert, rows become visible at commit)
    conversation = make_conversation(Status.QUEUED)
    older = _note(conversation, team.bruno, "antiga")
    late = _note(conversation, team.bruno, "atrasada")
    shown = _note(conversation, team.bruno, "já na tela")
    screen = Screen(conversation.pk, messages=[older.pk, shown.pk])

    async def scenario() -> None:
        ana, _ = await connect(team.ana)
        # Its cursor is from just before the late one committed.
        since = f"{(timezone.now() - timedelta(seconds=5)).timestamp():.6f}"
        for frame in await sync(ana, conversation.pk, after=shown.pk, since=since):
            screen.apply(frame)
        await ana.disconnect()

    async_to_sync(scenario)()

    # then: it belongs before the one shown, and it is there (the overlap caught it)
    assert late.pk < shown.pk
    assert screen.timeline == [f"message-{older.pk}", f"message-{late.pk}", f"message-{shown.pk}"]


def test_it_sends_nothing_of_a_conversation_the_user_may_not_see(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana, name="Maria Souza")
    _note(conversation, team.ana, "particular")

    async def scenario() -> str:
        bruno, _ = await connect(team.bruno)
        received = "".join(await sync(bruno, conversation.pk, after=0))
        await bruno.disconnect()
        return received

    received = async_to_sync(scenario)()

    assert "particular" not in received
    assert "Maria Souza" not in received
    assert 'id="message-' not in received


def test_it_ignores_a_forged_cursor(live, team, make_conversation) -> None:
    # A cursor from the future would skip what is coming: it is clamped to now.
    conversation = make_conversation(Status.QUEUED)
    message = _note(conversation, team.bruno, "recente")
    screen = Screen(conversation.pk)

    async def scenario() -> None:
        ana, _ = await connect(team.ana)
        future = f"{(timezone.now() + timedelta(days=365)).timestamp():.6f}"
        for frame in await sync(ana, conversation.pk, after=0, since=future):
            screen.apply(frame)
        await ana.disconnect()

    async_to_sync(scenario)()

    assert screen.timeline == [f"message-{message.pk}"]
