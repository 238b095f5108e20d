"""bots.engine: intents first, the offer of a person, the language model with its tools against
the fake provider (real HTTP through the openai client), the offline bot, and the fallback."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from bots import engine, prompt, tools
from bots.models import BotConfig, BotRun, BusinessHours, KnowledgeEntry, ModelPrice
from bots.turn import Line, Turn
from tests.fake_openai import (
    TEST_KEY,
    FakeOpenAI,
    answer,
    call,
    dropped,
    error,
    hang,
    rate_limited,
    tool_calls,
)

pytest_plugins = ["tests.conftest_openai"]
# The texts asserted below are the English msgids (pt-BR is the default language).
pytestmark = pytest.mark.usefixtures("english")

# Monday 2026-03-02 14:30 in São Paulo (UTC-3, no daylight saving).
NOW = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
QUESTION = "Vocês fazem luzes no cabelo?"


def make_turn(config: BotConfig, *texts: str, history: list[Line] | None = None, **extra: Any) -> Turn:
    new = [Line(role="customer", text=text, message_id=100 + i) for i, text in enumerate(texts)]
    return Turn(config=config, history=[*(history or []), *new], new=new, now=NOW, conversation_id=7, **extra)


def tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


# --- the language model --------------------------------------------------------------------


def test_it_answers_with_the_model(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(answer("Fazemos sim! Luzes a partir de R$ 250.", tokens_in=400, tokens_out=30))

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.engine == BotRun.Engine.LLM
    assert decision.reply == "Fazemos sim! Luzes a partir de R$ 250."
    assert decision.handoff is None and decision.menu is None and decision.error == ""
    assert (decision.tokens_in, decision.tokens_out, decision.model) == (400, 30, "fake-model")
    assert decision.tool_calls == []
    (request,) = fake_openai.chats()
    assert request["messages"][-1] == {"role": "user", "content": QUESTION}
    assert [t["function"]["name"] for t in request["tools"]] == [
        "handoff_to_human",
        "search_knowledge",
        "business_hours",
        "record_lead",
    ]


def test_the_system_prompt_holds_the_business_and_the_rules(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.persona = "Simpática e objetiva."
    llm_bot.instructions = "Sempre ofereça agendamento."
    llm_bot.business_address = "Rua Augusta, 1500, São Paulo"
    llm_bot.services = "Corte feminino R$ 80\nLuzes R$ 250"
    llm_bot.payment_methods = "Pix, cartão"
    llm_bot.greeting = "Olá! Bem-vinda ao Bela Vista."
    llm_bot.handoff_topics = "alergia a produtos\nreclamação de serviço"
    BusinessHours.objects.create(bot=llm_bot, weekday=0, opens=time(9), closes=time(19))

    engine.decide(make_turn(llm_bot, QUESTION, lead={"name": "Joana"}))

    system = fake_openai.chats()[0]["messages"][0]
    assert system["role"] == "system"
    text = system["content"]
    for expected in (
        "Salão Bela Vista",
        "Simpática e objetiva.",
        "Sempre ofereça agendamento.",
        "Rua Augusta, 1500, São Paulo",
        "Luzes R$ 250",
        "Pix, cartão",
        "Olá! Bem-vinda ao Bela Vista.",
        "- alergia a produtos",
        "- reclamação de serviço",
        "- name: Joana",
        "09:00",
        # 17:30 UTC is 14:30 in São Paulo.
        "Now: Monday 2026-03-02 14:30 (America/Sao_Paulo)",
        "Brazilian Portuguese",
        "Never invent prices",
    ):
        assert expected in text, expected


def test_the_history_reaches_the_model_with_roles(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    history = [
        Line(role="customer", text="Oi", message_id=1),
        Line(role="bot", text="Olá! Como posso ajudar?", message_id=2),
        Line(role="attendant", text="Joana aqui, já volto.", message_id=3),
        Line(role="system", text="número alterado", message_id=4),
        Line(role="customer", text="", message_id=5, type="audio", unheard_audio=True),
    ]

    engine.decide(make_turn(llm_bot, QUESTION, "E quanto custa?", history=history))

    assert fake_openai.chats()[0]["messages"][1:] == [
        {"role": "user", "content": "Oi"},
        {"role": "assistant", "content": "Olá! Como posso ajudar?"},
        {"role": "assistant", "content": prompt.ATTENDANT_PREFIX + "Joana aqui, já volto."},
        {"role": "user", "content": prompt.UNHEARD_AUDIO},
        {"role": "user", "content": QUESTION},
        {"role": "user", "content": "E quanto custa?"},
    ]


def test_the_model_hands_off_with_a_reason_priority_and_summary(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(
            call(
                "handoff_to_human", {"reason": "complaint", "priority": 2, "summary": "Cabelo ficou manchado"}, id="h1"
            ),
            tokens_in=300,
            tokens_out=25,
        ),
        answer("Vou chamar alguém da equipe para te ajudar.", tokens_in=350, tokens_out=12),
    )

    decision = engine.decide(make_turn(llm_bot, "Minhas luzes ficaram manchadas"))

    assert decision.reply == "Vou chamar alguém da equipe para te ajudar."
    assert decision.handoff is not None
    assert (decision.handoff.reason, decision.handoff.priority, decision.handoff.summary) == (
        "complaint",
        2,
        "Cabelo ficou manchado",
    )
    assert (decision.tokens_in, decision.tokens_out) == (650, 37)
    assert decision.tool_calls == [
        {
            "name": "handoff_to_human",
            "arguments": {"reason": "complaint", "priority": 2, "summary": "Cabelo ficou manchado"},
            "result": decision.tool_calls[0]["result"],
        }
    ]
    assert decision.tool_calls[0]["result"]["ok"] is True
    second = fake_openai.chats()[1]
    assistant = second["messages"][-2]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["id"] == "h1"
    assert assistant["tool_calls"][0]["function"]["name"] == "handoff_to_human"
    (result,) = tool_messages(second)
    assert result["tool_call_id"] == "h1"
    assert json.loads(result["content"])["reason"] == "complaint"


def test_a_handoff_without_a_final_text_is_still_a_handoff(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(call("handoff_to_human", {"reason": "the customer wants a refund of the payment", "summary": "x"})),
        answer(""),
    )

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.reply == ""
    assert decision.error == ""
    assert decision.handoff is not None
    assert decision.handoff.reason == "billing"
    assert decision.handoff.priority == 1
    assert decision.handoff.detail == "the customer wants a refund of the payment"


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("customer_request", "customer_request"),
        ("Customer-Request", "customer_request"),
        ("emergency", "emergency"),
        ("cliente quer cancelar o plano", "cancellation"),
        ("reclamação do atendimento", "complaint"),
        ("wants a human", "customer_request"),
        ("bot_failure", "model"),
        ("phone_app", "model"),
        ("", "model"),
        (None, "model"),
        (42, "model"),
    ],
)
def test_the_model_reason_is_mapped_onto_the_taxonomy(given: Any, reason: str) -> None:
    assert tools.map_reason(given) == reason


@pytest.mark.parametrize(
    ("given", "priority"), [(0, 0), (3, 3), (9, 3), (-1, 0), ("2", 2), ("high", 2), ("x", 1), (None, 1), (True, 1)]
)
def test_the_model_priority_is_bounded(given: Any, priority: int) -> None:
    assert tools.map_priority(given) == priority


def test_an_emergency_from_the_model_is_urgent(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(call("handoff_to_human", {"reason": "emergency", "priority": 1, "summary": "s"})),
        answer("Já chamei."),
    )

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.handoff is not None
    assert (decision.handoff.reason, decision.handoff.priority) == ("emergency", 3)


def test_search_knowledge_round_trip(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    entry = KnowledgeEntry.objects.create(
        bot=llm_bot,
        title="Vocês aceitam Pix?",
        body="Aceitamos Pix, cartão de crédito e débito.",
        keywords="pix, pagamento, cartão",
    )
    KnowledgeEntry.objects.create(
        bot=llm_bot, title="Estacionamento", body="Temos convênio com o estacionamento ao lado."
    )
    fake_openai.chat(
        tool_calls(call("search_knowledge", {"query": "pix pagamento"}, id="s1")),
        answer("Aceitamos Pix, sim!"),
    )

    decision = engine.decide(make_turn(llm_bot, "Oi, tudo bem?"))

    assert decision.reply == "Aceitamos Pix, sim!"
    assert {"id": entry.pk, "title": "Vocês aceitam Pix?"} in decision.knowledge
    (result,) = tool_messages(fake_openai.chats()[1])
    assert result["tool_call_id"] == "s1"
    found = json.loads(result["content"])["results"]
    assert found[0] == {
        "id": entry.pk,
        "title": "Vocês aceitam Pix?",
        "text": "Aceitamos Pix, cartão de crédito e débito.",
    }
    assert decision.tool_calls[0]["name"] == "search_knowledge"
    assert decision.tool_calls[0]["arguments"] == {"query": "pix pagamento"}


def test_the_most_relevant_knowledge_is_in_the_prompt(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    entry = KnowledgeEntry.objects.create(
        bot=llm_bot,
        title="Quanto custam as luzes?",
        body="Luzes a partir de R$ 250, conforme o comprimento.",
        keywords="luzes, mechas",
    )

    decision = engine.decide(make_turn(llm_bot, "Quanto custam as luzes?"))

    assert decision.knowledge == [{"id": entry.pk, "title": "Quanto custam as luzes?"}]
    assert "Luzes a partir de R$ 250, conforme o comprimento." in fake_openai.chats()[0]["messages"][0]["content"]


def test_record_lead_is_merged_into_the_decision(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(
            call(
                "record_lead", {"fields": {"name": "Joana", "service": "luzes", "preferred_day": "sábado", "age": "30"}}
            ),
            # Flat, as some models send it.
            call("record_lead", {"preferred_time": "manhã", "source": "Instagram"}),
        ),
        answer("Anotado, Joana!"),
    )

    decision = engine.decide(make_turn(llm_bot, "Sou a Joana, quero luzes no sábado de manhã"))

    assert decision.reply == "Anotado, Joana!"
    assert decision.lead == {
        "name": "Joana",
        "service": "luzes",
        "preferred_day": "sábado",
        "preferred_time": "manhã",
        "source": "Instagram",
    }
    assert [c["result"]["recorded"] for c in decision.tool_calls] == [
        {"name": "Joana", "service": "luzes", "preferred_day": "sábado"},
        {"preferred_time": "manhã", "source": "Instagram"},
    ]


def test_business_hours_tool(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    BusinessHours.objects.create(bot=llm_bot, weekday=0, opens=time(9), closes=time(12))
    fake_openai.chat(tool_calls(call("business_hours", id="b1")), answer("Hoje abrimos das 9h às 12h."))
    opens = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)

    decision = engine.decide(make_turn(llm_bot, "Que horas vocês abrem?", open_now=False, opens_next=opens))

    assert decision.reply == "Hoje abrimos das 9h às 12h."
    (result,) = tool_messages(fake_openai.chats()[1])
    content = json.loads(result["content"])
    assert "09:00" in content["hours"] and "12:00" in content["hours"]
    assert content["open_now"] is False
    assert content["opens_next"] == "2026-03-09T09:00-03:00"
    assert content["now"] == "2026-03-02T14:30-03:00"


def test_malformed_tool_arguments_are_answered_not_a_crash(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(call("record_lead", '{"fields": {"name": "Jo', id="bad"), call("no_such_tool", {}, id="nope")),
        answer("Pode repetir seu nome?"),
    )

    decision = engine.decide(make_turn(llm_bot, "Meu nome é Joana"))

    assert decision.reply == "Pode repetir seu nome?"
    assert decision.lead == {}
    assert decision.error == ""
    assert decision.tool_calls[0]["arguments"] == '{"fields": {"name": "Jo'
    assert "not a valid JSON object" in decision.tool_calls[0]["result"]["error"]
    assert "unknown tool" in decision.tool_calls[1]["result"]["error"]
    second = fake_openai.chats()[1]
    # The bad JSON is not echoed back to the provider.
    assert second["messages"][-3]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert [m["tool_call_id"] for m in tool_messages(second)] == ["bad", "nope"]


def test_the_tool_loop_is_bounded(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(*[tool_calls(call("business_hours")) for _ in range(6)])

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert len(fake_openai.chats()) == engine.MAX_ROUNDS
    assert len(decision.tool_calls) == engine.MAX_ROUNDS
    # No answer after all rounds: the customer still gets one, and a person.
    assert decision.reply.startswith("Sorry, I had a problem")
    assert decision.handoff is not None and decision.handoff.reason == "bot_failure"


def test_cost_is_computed_from_the_model_price(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    ModelPrice.objects.create(model="fake-model", input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"))
    fake_openai.chat(
        tool_calls(call("business_hours"), tokens_in=1000, tokens_out=100),
        answer("Abrimos às 9h.", tokens_in=1200, tokens_out=50),
    )

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    # (0.15 * 2200 + 0.60 * 150) / 1e6
    assert decision.cost == Decimal("0.000420")
    assert decision.llm_ms >= 0


def test_cost_is_zero_for_an_unknown_model(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    ModelPrice.objects.create(model="other-model", input_per_million=Decimal("5"), output_per_million=Decimal("15"))

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.tokens_in > 0
    assert decision.cost == Decimal(0)


def test_cost_uses_the_provider_model_name_when_the_configured_one_has_no_price(
    llm_bot: BotConfig, fake_openai: FakeOpenAI
) -> None:
    ModelPrice.objects.create(
        model="fake-model-2026-01", input_per_million=Decimal("1"), output_per_million=Decimal("2")
    )
    fake_openai.chat(answer("ok", tokens_in=1_000_000, tokens_out=1_000_000, model="fake-model-2026-01"))

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.model == "fake-model-2026-01"
    assert decision.cost == Decimal("3")


# --- failures: an apology and a person ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind"),
    [(error(500), "provider"), (error(401), "config"), (rate_limited(20), "rate_limit"), (dropped(), "provider")],
)
def test_a_provider_failure_becomes_an_apology_and_a_handoff(
    llm_bot: BotConfig, fake_openai: FakeOpenAI, reply: Any, kind: str
) -> None:
    fake_openai.chat(reply)

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.engine == BotRun.Engine.LLM
    assert decision.reply.startswith("Sorry, I had a problem answering you.")
    assert decision.handoff is not None
    assert (decision.handoff.reason, decision.handoff.detail) == ("bot_failure", kind)
    assert decision.error.startswith(kind)


def test_a_timeout_becomes_an_apology_and_a_handoff(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.timeout = 0.3
    fake_openai.chat(hang())

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.handoff is not None
    assert (decision.handoff.reason, decision.handoff.detail) == ("bot_failure", "timeout")
    assert decision.reply.startswith("Sorry")
    assert decision.llm_ms == 0


def test_a_slow_answer_within_the_timeout_is_the_reply(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.timeout = 2.0
    fake_openai.chat(answer("Resposta lenta.", delay=0.5))

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.reply == "Resposta lenta."
    assert decision.handoff is None
    assert decision.llm_ms >= 500


def test_a_failure_after_tools_keeps_what_was_collected(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(
            call("record_lead", {"fields": {"name": "Joana"}}),
            call("handoff_to_human", {"reason": "complaint", "priority": 2, "summary": "Reclama do corte"}),
            tokens_in=100,
            tokens_out=10,
        ),
        error(503),
    )

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.lead == {"name": "Joana"}
    assert decision.handoff is not None
    assert (decision.handoff.reason, decision.handoff.priority, decision.handoff.summary) == (
        "bot_failure",
        2,
        "Reclama do corte",
    )
    assert (decision.tokens_in, decision.tokens_out) == (100, 10)
    assert len(decision.tool_calls) == 2


def test_the_key_is_not_in_the_decision_or_the_logs(
    llm_bot: BotConfig, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_openai.chat(error(401, f"Incorrect API key provided: {TEST_KEY}"))

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.handoff is not None and decision.handoff.detail == "config"
    assert "Incorrect API key provided: [key]" in decision.error
    assert TEST_KEY not in decision.error
    assert TEST_KEY not in caplog.text
    assert "language model failed (config)" in caplog.text


# --- before the model ------------------------------------------------------------------------


def test_too_many_turns_offers_a_person_without_the_model(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.max_turns = 3

    decision = engine.decide(make_turn(llm_bot, QUESTION, turns=3))

    assert decision.reply
    assert decision.menu is not None
    assert [(o.id, o.title) for o in decision.menu.options] == [("human", "Talk to an attendant")]
    assert decision.handoff is None
    assert fake_openai.requests == []


def test_after_the_offer_the_bot_hands_off(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.max_turns = 3

    decision = engine.decide(make_turn(llm_bot, QUESTION, turns=4))

    assert decision.handoff is not None and decision.handoff.reason == "too_many_turns"
    assert decision.reply
    assert fake_openai.requests == []


def test_below_the_limit_the_model_answers(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.max_turns = 3

    decision = engine.decide(make_turn(llm_bot, QUESTION, turns=2))

    assert decision.menu is None and decision.handoff is None
    assert len(fake_openai.chats()) == 1


def test_the_menu_button_hands_off(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    line = Line(role="customer", text="Talk to an attendant", message_id=9, type="interactive", choice_id="human")

    decision = engine.decide(Turn(config=llm_bot, history=[line], new=[line], now=NOW, turns=99))

    assert decision.handoff is not None and decision.handoff.reason == "customer_request"
    assert fake_openai.requests == []


def test_an_unheard_voice_note_offers_a_person_without_the_model(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    line = Line(role="customer", text="", message_id=9, type="audio", unheard_audio=True)

    decision = engine.decide(Turn(config=llm_bot, history=[line], new=[line], now=NOW))

    assert "audio" in decision.reply
    assert decision.menu is not None and [o.id for o in decision.menu.options] == ["human"]
    assert fake_openai.requests == []


def test_intents_come_before_the_model(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    decision = engine.decide(make_turn(llm_bot, "quero falar com um atendente por favor"))

    assert decision.engine == BotRun.Engine.LLM
    assert decision.handoff is not None and decision.handoff.reason == "customer_request"
    assert fake_openai.requests == []


def test_without_a_provider_the_offline_bot_answers(inbox: Any, fake_openai: FakeOpenAI) -> None:
    config = BotConfig.objects.create(inbox=inbox)
    KnowledgeEntry.objects.create(
        bot=config, title="Vocês aceitam Pix?", body="Aceitamos Pix e cartão.", keywords="pix"
    )

    decision = engine.decide(make_turn(config, "aceita pix?"))

    assert decision.engine == BotRun.Engine.OFFLINE
    assert decision.reply or decision.menu is not None
    assert fake_openai.requests == []


def test_a_tapped_topic_is_not_read_as_a_handoff_request(inbox: Any, fake_openai: FakeOpenAI) -> None:
    config = BotConfig.objects.create(inbox=inbox)
    entry = KnowledgeEntry.objects.create(
        bot=config, title="Cancelamento de pacote", body="Você pode remarcar até 24h antes.", in_menu=True
    )
    line = Line(
        role="customer", text="Cancelamento de pacote", message_id=9, type="interactive", choice_id=f"kb:{entry.pk}"
    )

    decision = engine.decide(Turn(config=config, history=[line], new=[line], now=NOW))

    assert decision.handoff is None
    assert decision.reply == "Você pode remarcar até 24h antes."


def test_typed_words_next_to_a_tap_are_still_read(inbox: Any, fake_openai: FakeOpenAI) -> None:
    config = BotConfig.objects.create(inbox=inbox)
    tap = Line(role="customer", text="Horários", message_id=9, type="interactive", choice_id="kb:999")
    typed = Line(role="customer", text="quero cancelar meu pacote", message_id=10)

    decision = engine.decide(Turn(config=config, history=[tap, typed], new=[tap, typed], now=NOW))

    assert decision.handoff is not None and decision.handoff.reason == "cancellation"


def test_tool_calls_without_ids_are_paired_with_their_results(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    # Some OpenAI-compatible servers send no tool call id.
    fake_openai.chat(
        tool_calls(call("business_hours", id=""), call("search_knowledge", {"query": "pix"}, id="")),
        answer("Pronto."),
    )

    decision = engine.decide(make_turn(llm_bot, QUESTION))

    assert decision.reply == "Pronto."
    second = fake_openai.chats()[1]
    ids = [c["id"] for c in second["messages"][-3]["tool_calls"]]
    assert all(ids) and len(set(ids)) == 2
    assert [m["tool_call_id"] for m in tool_messages(second)] == ids
