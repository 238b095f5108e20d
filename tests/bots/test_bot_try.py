"""``manage.py bot_try`` and ``bots.trial``: the real pipeline for made-up customer lines, with
nothing stored and nothing sent."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bots import trial
from bots.models import BotConfig, BotRun, BotState
from conversations.models import Conversation, Customer, Inbox, Message
from handoffs.models import Handoff
from tests.fake_graph import FakeGraph
from tests.fake_openai import FakeOpenAI, answer

pytest_plugins = ["tests.conftest_graph", "tests.conftest_openai"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]


def nothing_stored() -> bool:
    return not any(model.objects.exists() for model in (Customer, Conversation, Message, BotRun, BotState, Handoff))


def bot_try(*args: str, stdin: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("bot_try", *args, stdin=io.StringIO(stdin), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_it_prints_one_answer_a_line_and_stores_and_sends_nothing(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    # given
    fake_openai.chat(answer("O corte custa R$ 80."), answer("Fazemos escova, sim."))

    # when
    lines = bot_try(
        "--inbox", str(inbox.pk), stdin="Quanto custa o corte?\n\nVocês fazem escova?\nquero falar com um atendente\n"
    )

    # then: one JSON object per customer line (the blank one skipped)
    assert lines == [
        {"text": "Quanto custa o corte?", "reply": "O corte custa R$ 80.", "handoff": False, "reason": ""},
        {"text": "Vocês fazem escova?", "reply": "Fazemos escova, sim.", "handoff": False, "reason": ""},
        {
            "text": "quero falar com um atendente",
            "reply": lines[2]["reply"],
            "handoff": True,
            "reason": "customer_request",
        },
    ]
    assert "person" in lines[2]["reply"]
    # each line was the first message of a fresh conversation: the second prompt knows nothing of the first
    second = fake_openai.chats()[1]
    assert "Quanto custa o corte?" not in json.dumps(second, ensure_ascii=False)
    # and nothing was kept or sent
    assert nothing_stored()
    assert fake_graph.requests == []


def test_it_uses_the_default_inbox_when_none_is_named(inbox: Inbox, settings: Any, fake_graph: FakeGraph) -> None:
    settings.WHATSAPP_PHONE_NUMBER_ID = inbox.phone_number_id

    lines = bot_try(stdin="quero falar com um atendente\n")

    assert [(item["handoff"], item["reason"]) for item in lines] == [(True, "customer_request")]
    # what the customer reads: the queue's notice (a person is coming)
    assert "person" in lines[0]["reply"]
    assert nothing_stored()
    assert fake_graph.requests == []


def test_it_refuses_an_unknown_inbox(inbox: Inbox) -> None:
    with pytest.raises(CommandError):
        bot_try("--inbox", str(inbox.pk + 100), stdin="oi\n")


def test_try_conversation_keeps_one_conversation_and_reports_usage(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    # given
    fake_openai.chat(answer("Olá! Como posso ajudar?", tokens_in=120, tokens_out=8), answer("Custa R$ 80."))

    # when: two lines of one conversation
    results = trial.try_conversation(inbox, ["Oi", "e o corte?"])

    # then: the second turn read the first exchange, and each result says what it cost
    assert [r.reply for r in results] == ["Olá! Como posso ajudar?", "Custa R$ 80."]
    second = json.dumps(fake_openai.chats()[1], ensure_ascii=False)
    assert "Olá! Como posso ajudar?" in second and "Oi" in second
    assert (results[0].engine, results[0].model, results[0].tokens_in, results[0].tokens_out) == (
        "llm",
        "fake-model",
        120,
        8,
    )
    assert results[0].latency_ms >= results[0].llm_ms >= 0
    assert [r.status for r in results] == ["bot", "bot"]
    assert nothing_stored()
    assert fake_graph.requests == []
