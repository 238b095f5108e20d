"""What a customer's message costs the bot's receivers in the webhook worker: intake says who
owns the conversation and what the message is, so most messages need no query and no task."""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app

from bots.models import BotConfig
from conversations import signals
from conversations.models import Conversation, Customer, Inbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, dict]]:
    """Tasks sent to the broker, recorded instead of run (the receivers' side only)."""
    sent: list[tuple[str, tuple, dict]] = []
    current_app.loader.import_default_modules()
    task = current_app.tasks["bots.tasks.reply"]
    monkeypatch.setattr(task, "apply_async", lambda args=(), **options: sent.append((task.name, args, options)))
    return sent


def _conversation(status: str) -> Conversation:
    inbox = Inbox.objects.create(name="Salão", phone_number_id="PNID-COST")
    customer = Customer.objects.create(wa_id="5511999990000", name="Rita")
    return Conversation.objects.create(inbox=inbox, customer=customer, status=status)


def _announce(conversation: Conversation, status: str, type: str = "text") -> None:
    for _receiver, result in signals.message_received.send_robust(
        sender=None,
        message_id=1,
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
        status=status,
        type=type,
    ):
        assert not isinstance(result, Exception), result


@pytest.mark.parametrize("status", ["queued", "assigned"])
def test_a_message_to_people_costs_the_receivers_no_query_and_no_task(
    status: str, published: list, django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = _conversation(status)

    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(0):
        _announce(conversation, status)

    assert published == []


def test_a_reaction_in_a_bot_conversation_queues_nothing(
    published: list, django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = _conversation("bot")

    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(0):
        _announce(conversation, "bot", type="reaction")

    assert published == []


def test_a_message_to_the_bot_queues_its_turn_after_the_burst_with_the_inbox_read_once(
    published: list, django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = _conversation("bot")
    BotConfig.objects.create(inbox=conversation.inbox, burst_seconds=3.5)

    # the first message reads the inbox's burst wait; the next ones need no query
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(1):
        _announce(conversation, "bot")
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(0):
        _announce(conversation, "bot")

    assert [(name, args, options["countdown"]) for name, args, options in published] == [
        ("bots.tasks.reply", (conversation.pk,), 3.5),
        ("bots.tasks.reply", (conversation.pk,), 3.5),
    ]


def test_a_changed_burst_wait_is_used_at_once(published: list, django_capture_on_commit_callbacks: Any) -> None:
    conversation = _conversation("bot")
    config = BotConfig.objects.create(inbox=conversation.inbox, burst_seconds=3.5)
    with django_capture_on_commit_callbacks(execute=True):
        _announce(conversation, "bot")

    config.burst_seconds = 0.5
    config.save()
    with django_capture_on_commit_callbacks(execute=True):
        _announce(conversation, "bot")

    assert [options["countdown"] for _name, _args, options in published] == [3.5, 0.5]
