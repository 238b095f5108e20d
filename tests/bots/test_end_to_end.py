"""End to end: a signed webhook POST from "Meta" to the bot's reply accepted by the fake Graph
API, with the fake OpenAI-compatible provider and with the offline bot."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bots.models import BotConfig, BotRun
from conversations.models import Conversation, Inbox, Message
from handoffs.models import Handoff
from tests.bots.pipeline_helpers import bot_messages
from tests.conftest import text_payload
from tests.fake_graph import FakeGraph
from tests.fake_openai import FakeOpenAI, answer

pytest_plugins = ["tests.conftest_graph", "tests.conftest_openai"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]


def now() -> int:
    """Meta's timestamps are seconds; the customer writes now (the 24-hour window is open)."""
    return int(time.time())


def accepted_texts(fake_graph: FakeGraph) -> list[str]:
    texts = []
    for item in fake_graph.accepted:
        body = item["body"]
        if body["type"] == "text":
            texts.append(body["text"]["body"])
        elif body["type"] == "interactive":
            texts.append(body["interactive"]["body"]["text"])
    return texts


def test_a_webhook_gets_the_models_reply_at_meta(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph, post_webhook: Any
) -> None:
    # given
    fake_openai.chat(answer("Olá, Maria! O corte feminino custa R$ 80."))

    # when
    response = post_webhook(text_payload("wamid.E2E1", "Oi, quanto custa o corte feminino?", timestamp=now()))

    # then: the reply reached "Meta", addressed to the customer, as the bot
    assert response.status_code == 200
    (accepted,) = fake_graph.accepted
    assert accepted["body"]["to"] == "+5511987654321"
    assert accepted["body"]["text"]["body"] == "Olá, Maria! O corte feminino custa R$ 80."
    inbound = Message.objects.get(wamid="wamid.E2E1")
    (reply,) = bot_messages(inbound.conversation_id)
    assert (reply.sender_kind, reply.status, reply.wamid) == ("bot", "sent", accepted["wamid"])
    (request,) = fake_openai.chats()
    assert request["model"] == "fake-model"
    run = BotRun.objects.get(conversation_id=inbound.conversation_id)
    assert (run.outcome, run.engine, run.reply_id) == ("replied", "llm", reply.pk)


def test_a_webhook_gets_the_offline_bots_reply_at_meta(inbox: Inbox, fake_graph: FakeGraph, post_webhook: Any) -> None:
    # when: the inbox has no provider (the embedded default)
    response = post_webhook(text_payload("wamid.E2E2", "Oi, boa tarde", timestamp=now()))

    # then
    assert response.status_code == 200
    inbound = Message.objects.get(wamid="wamid.E2E2")
    sent = bot_messages(inbound.conversation_id)
    assert sent
    assert accepted_texts(fake_graph) == [m.text for m in sent]
    assert all(m.status == Message.Status.SENT for m in sent)
    run = BotRun.objects.get(conversation_id=inbound.conversation_id)
    assert (run.engine, run.outcome) == ("offline", "replied")
    assert Conversation.objects.get(pk=inbound.conversation_id).status == Conversation.Status.BOT


def test_asking_for_a_person_by_webhook_queues_the_conversation(
    inbox: Inbox, fake_graph: FakeGraph, post_webhook: Any
) -> None:
    # when: first a question, then a request for a person
    post_webhook(text_payload("wamid.E2E3", "Oi", timestamp=now()))
    post_webhook(text_payload("wamid.E2E4", "quero falar com um atendente pfv", timestamp=now() + 1))

    # then
    conversation = Message.objects.get(wamid="wamid.E2E4").conversation
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.QUEUED
    handoff = Handoff.objects.get(conversation=conversation)
    assert handoff.reason == Handoff.Reason.CUSTOMER_REQUEST
    runs = list(BotRun.objects.filter(conversation=conversation).order_by("id").values_list("outcome", flat=True))
    assert runs == ["replied", "handoff"]

    # when: the customer writes again while waiting for the person
    bot_before = len(bot_messages(conversation))
    post_webhook(text_payload("wamid.E2E5", "oi? tem alguém aí?", timestamp=now() + 2))

    # then: the bot keeps out of it
    assert BotRun.objects.filter(conversation=conversation).count() == 2
    assert len(bot_messages(conversation)) == bot_before
