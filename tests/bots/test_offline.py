"""The offline bot (bots.offline.decide): menu choices, handoff rules first, greetings, thanks,
answers from the knowledge base, the menu's shape within WhatsApp's limits, voice notes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.utils import translation

from bots import offline
from bots.demo import fill_demo_bot
from bots.models import BotConfig, KnowledgeEntry
from bots.turn import Decision, Line, Turn
from conversations.models import Inbox
from handoffs.models import Handoff

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _english() -> None:
    # The source strings, whatever the catalogue says: the pipeline picks the customer's language.
    with translation.override("en"):
        yield


@pytest.fixture
def demo_bot(inbox: Inbox) -> BotConfig:
    return fill_demo_bot(inbox.pk)


@pytest.fixture
def bot(inbox: Inbox) -> BotConfig:
    return BotConfig.objects.create(inbox=inbox, name="Lia", business_name="Padaria Pão Quente")


def customer(text: str, message_id: int | None = None, **fields: object) -> Line:
    return Line(role="customer", text=text, message_id=message_id, **fields)


def turn_for(config: BotConfig, *new: Line, history: list[Line] | None = None) -> Turn:
    return Turn(config=config, history=[*(history or []), *new], new=list(new), now=NOW)


def decide(config: BotConfig, text: str) -> Decision:
    return offline.decide(turn_for(config, customer(text)))


def entry(config: BotConfig, title: str, **fields: object) -> KnowledgeEntry:
    return KnowledgeEntry.objects.create(bot=config, title=title, body=fields.pop("body", f"About {title}."), **fields)


# --- Handoffs ------------------------------------------------------------------------------------


def test_it_hands_off_a_request_for_a_person_without_answering(demo_bot: BotConfig) -> None:
    decision = decide(demo_bot, "qro falar c atendente pfv")
    assert decision.engine == "offline"
    assert decision.handoff.reason == Handoff.Reason.CUSTOMER_REQUEST
    assert (decision.reply, decision.menu) == ("", None)


def test_it_hands_off_an_emergency_as_urgent_at_the_demo_clinic(demo_bot: BotConfig) -> None:
    decision = decide(demo_bot, "fiz botox ontem e meu rosto está muito inchado")
    assert (decision.handoff.reason, decision.handoff.priority) == (Handoff.Reason.EMERGENCY, Handoff.Priority.URGENT)


def test_the_human_button_hands_off(demo_bot: BotConfig) -> None:
    line = customer("Talk to an attendant", type="interactive", choice_id="human")
    decision = offline.decide(turn_for(demo_bot, line))
    assert decision.handoff.reason == Handoff.Reason.CUSTOMER_REQUEST
    assert decision.reply == ""


def test_a_tapped_topic_answers_that_entry_even_when_its_title_sounds_like_a_handoff(bot: BotConfig) -> None:
    complaints = entry(bot, "Reclamações e elogios", body="Escreva para ouvidoria@padaria.com.br.")
    line = customer("Reclamações e elogios", type="interactive", choice_id=f"kb:{complaints.pk}")
    decision = offline.decide(turn_for(bot, line))
    assert decision.handoff is None
    assert decision.reply == "Escreva para ouvidoria@padaria.com.br."
    assert decision.knowledge == [{"id": complaints.pk, "title": "Reclamações e elogios"}]


def test_a_topic_of_another_bot_or_switched_off_is_not_answered(bot: BotConfig) -> None:
    other = Inbox.objects.create(name="Other", phone_number_id="OTHER_PNID", display_number="5511900000001")
    foreign = entry(BotConfig.objects.create(inbox=other), "Preços", body="Tabela.", in_menu=True)
    hidden = entry(bot, "Segredo", body="Não mostre.", active=False)
    for choice in (f"kb:{foreign.pk}", f"kb:{hidden.pk}", "kb:nope", "kb:"):
        decision = offline.decide(turn_for(bot, customer("x", type="interactive", choice_id=choice)))
        assert decision.reply == "Sorry, that option is no longer available."
        assert decision.menu is not None
        assert decision.knowledge == []


def test_the_menu_choice_shows_the_menu(demo_bot: BotConfig) -> None:
    decision = offline.decide(turn_for(demo_bot, customer("Menu", type="interactive", choice_id="menu")))
    assert decision.menu.is_list
    assert decision.handoff is None


def test_an_unknown_choice_is_read_as_text(demo_bot: BotConfig) -> None:
    line = customer("Quanto custa a escova?", type="interactive", choice_id="something-else")
    decision = offline.decide(turn_for(demo_bot, line))
    assert decision.reply.startswith("A escova custa R$ 80")


def test_going_round_in_circles_hands_off_as_frustration(demo_bot: BotConfig) -> None:
    earlier = [
        customer("qual o valor do mega hair?", 1),
        Line(role="bot", text="Desculpe, não entendi."),
        customer("não é isso", 2),
    ]
    decision = offline.decide(turn_for(demo_bot, customer("não entendi", 3), history=earlier))
    assert decision.handoff.reason == Handoff.Reason.FRUSTRATION
    once = offline.decide(turn_for(demo_bot, customer("não entendi", 3), history=earlier[:2]))
    assert once.handoff is None
    assert once.menu is not None


# --- Greetings, thanks, answers ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["oi", "Oiii", "Olá!", "bom dia", "Boa tarde, tudo bem?", "e aí", "hello"])
def test_a_greeting_gets_the_bots_greeting_and_the_menu(demo_bot: BotConfig, text: str) -> None:
    decision = decide(demo_bot, text)
    assert decision.reply == demo_bot.greeting
    assert decision.menu is not None and decision.menu.options[-1].id == "human"
    assert decision.handoff is None


def test_a_greeting_with_nothing_to_look_up_gets_the_greeting_and_the_menu(demo_bot: BotConfig) -> None:
    decision = decide(demo_bot, "Oi, tudo bem? Queria uma informação")
    assert decision.reply == demo_bot.greeting
    assert decision.menu is not None
    assert decide(demo_bot, "queria uma informação").reply == "How can I help you?"
    assert decide(demo_bot, "😀😀😀").reply == "How can I help you?"


def test_a_very_long_message_is_answered_quickly(demo_bot: BotConfig) -> None:
    started = time.perf_counter()
    decision = decide(demo_bot, "quanto custa a escova? " + "blá " * 30_000)
    assert time.perf_counter() - started < 3
    assert decision.reply.startswith("A escova custa")


def test_without_a_greeting_configured_it_introduces_itself(bot: BotConfig) -> None:
    introduction = "Hello! I am Lia, the virtual assistant of Padaria Pão Quente. How can I help you?"
    assert decide(bot, "oi").reply == introduction
    bot.business_name = ""
    assert decide(bot, "oi").reply == "Hello! I am Lia, a virtual assistant. How can I help you?"


@pytest.mark.parametrize("text", ["obrigada!", "Muito obrigado pela ajuda!!", "valeu", "vlw", "thanks", "👍"])
def test_thanks_get_a_short_reply_and_nothing_else(demo_bot: BotConfig, text: str) -> None:
    decision = decide(demo_bot, text)
    assert decision.reply == "You're welcome! If you need anything else, just send a message."
    assert (decision.menu, decision.handoff, decision.knowledge) == (None, None, [])


def test_an_acknowledgement_gets_a_short_reply(demo_bot: BotConfig) -> None:
    assert decide(demo_bot, "ok").reply == "All right! If you need anything else, just send a message."


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("quanto custa a escova?", "Quanto custa a escova?"),
        ("vcs abrem sabado?", "Horário de funcionamento"),
        ("Bom dia! Qual o endereço de vocês?", "Endereço e como chegar"),
        ("aceitam pix?", "Formas de pagamento"),
        ("oi, como faço pra marcar um horário?", "Como agendar"),
        ("qual a política de cancelamento?", "Política de cancelamento e atrasos"),
        ("preciso cancelar meu horário de amanhã", "Política de cancelamento e atrasos"),
    ],
)
def test_a_question_gets_the_best_knowledge_entry(demo_bot: BotConfig, text: str, title: str) -> None:
    decision = decide(demo_bot, text)
    answer = KnowledgeEntry.objects.get(bot=demo_bot, title=title)
    assert decision.reply == answer.body
    assert decision.knowledge == [{"id": answer.pk, "title": title}]
    assert decision.handoff is None


@pytest.mark.parametrize("text", ["vocês consertam geladeira?", "asdfgh", "qual a capital da França?", "<b>xyz</b>"])
def test_a_question_it_cannot_answer_gets_the_menu_with_a_person(demo_bot: BotConfig, text: str) -> None:
    decision = decide(demo_bot, text)
    assert decision.reply == "Sorry, I did not understand."
    assert decision.menu.body == "Choose one of the topics below, or talk to an attendant."
    assert decision.menu.options[-1].id == "human"
    assert (decision.handoff, decision.knowledge) == (None, [])


# --- The menu --------------------------------------------------------------------------------------


def test_the_demo_menu_is_a_list_within_whatsapps_limits(demo_bot: BotConfig) -> None:
    menu = decide(demo_bot, "oi").menu
    topics = KnowledgeEntry.objects.filter(bot=demo_bot, in_menu=True).order_by("position", "id")
    assert menu.is_list
    assert len(menu.button) <= 20
    assert [o.id for o in menu.options] == [*(f"kb:{t.pk}" for t in topics), "human"]
    assert all(len(o.title) <= 24 and len(o.description) <= 72 for o in menu.options)
    assert menu.options[-1].title == "Talk to an attendant"


def test_two_topics_make_reply_buttons(bot: BotConfig) -> None:
    first = entry(bot, "Horário de funcionamento da loja", in_menu=True, position=1)
    second = entry(bot, "Encomendas", in_menu=True, position=2)
    entry(bot, "Não está no menu")
    menu = decide(bot, "oi").menu
    assert not menu.is_list
    assert [(o.id, o.title) for o in menu.options] == [
        (f"kb:{first.pk}", "Horário de funciona…"),
        (f"kb:{second.pk}", "Encomendas"),
        ("human", "Talk to an attendant"),
    ]
    assert all(len(o.title) <= 20 for o in menu.options)


def test_without_topics_the_menu_offers_a_person(bot: BotConfig) -> None:
    menu = decide(bot, "oi").menu
    assert [o.id for o in menu.options] == ["human"]
    assert not menu.is_list


def test_many_topics_fill_at_most_ten_rows_with_long_titles_described(bot: BotConfig) -> None:
    long_title = "Qual é o prazo de entrega das encomendas de bolos de aniversário personalizados?"
    entries = [entry(bot, long_title, in_menu=True, position=0, body="Três dias úteis.")]
    entries += [entry(bot, f"Tópico {n}", in_menu=True, position=n, body=f"Resposta {n}. Mais.") for n in range(1, 15)]
    menu = decide(bot, "oi").menu
    assert menu.is_list
    assert len(menu.options) == 10
    assert [o.id for o in menu.options[:9]] == [f"kb:{e.pk}" for e in entries[:9]]
    assert menu.options[0].title == "Qual é o prazo de entre…"
    assert menu.options[0].description == long_title[:71] + "…"
    assert menu.options[1].description == "Resposta 1."
    assert menu.options[-1].id == "human"
    assert all(len(o.title) <= 24 and len(o.description) <= 72 for o in menu.options)


# --- Voice notes and other things without text -----------------------------------------------------------


def test_an_unheard_voice_note_is_told_and_offered_a_person(demo_bot: BotConfig) -> None:
    decision = offline.decide(turn_for(demo_bot, customer("", type="audio", unheard_audio=True)))
    assert decision.reply == "Sorry, I cannot listen to audio messages. Could you write your question?"
    assert [(o.id, o.title) for o in decision.menu.options] == [("human", "Talk to an attendant")]
    assert decision.handoff is None


def test_a_voice_note_with_a_typed_question_answers_the_question(demo_bot: BotConfig) -> None:
    lines = [customer("", 1, type="audio", unheard_audio=True), customer("aceitam pix?", 2)]
    decision = offline.decide(turn_for(demo_bot, *lines))
    assert decision.reply.startswith("Aceitamos Pix")


def test_an_image_without_a_caption_gets_the_menu(demo_bot: BotConfig) -> None:
    decision = offline.decide(turn_for(demo_bot, customer("", type="image")))
    assert decision.reply == "How can I help you?"
    assert decision.menu is not None


def test_a_burst_is_read_as_one_message(demo_bot: BotConfig) -> None:
    lines = [customer("oi", 1), customer("boa tarde", 2), customer("quanto custa a progressiva?", 3)]
    decision = offline.decide(turn_for(demo_bot, *lines))
    assert decision.knowledge[0]["title"] == "Quanto custa a escova progressiva?"


@pytest.mark.parametrize(
    "text", ["\x00escova\x00", "escova' OR 1=1 --", "escova & | ! :* \\", "\u202eavocse", "ESCOVA!!!"]
)
def test_hostile_text_is_read_as_words(demo_bot: BotConfig, text: str) -> None:
    decision = decide(demo_bot, text)
    assert decision.handoff is None
    assert decision.knowledge or decision.menu is not None
