"""The reply pipeline (``bots.pipeline.run_turn``): what the bot reads, what it sends, what it
records, and what it never does (answer a conversation a person has, or twice)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bots import pipeline, services
from bots.models import BotConfig, BotRun, BotState, BusinessHours, Lead, ModelPrice
from conversations.models import Conversation, Inbox, Message
from handoffs import services as handoffs
from handoffs.models import Handoff
from tests.bots.pipeline_helpers import bot_messages, say
from tests.fake_graph import FakeGraph
from tests.fake_openai import FakeOpenAI, answer, error, hang, rate_limited

pytest_plugins = ["tests.conftest_graph", "tests.conftest_openai", "tests.bots.pipeline_support"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]


def user_contents(request: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in request["messages"] if m.get("role") == "user")


def all_contents(request: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in request["messages"])


def test_it_answers_a_customer_message_through_the_sending_path(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    # given
    fake_openai.chat(answer("O corte custa R$ 80."))

    # when: the customer writes (intake; the reply task runs eagerly after commit)
    message = say(inbox, "Quanto custa o corte?")

    # then
    conversation = message.conversation
    (reply,) = bot_messages(conversation)
    assert reply.text == "O corte custa R$ 80."
    assert reply.status == Message.Status.SENT
    assert [a["body"]["text"]["body"] for a in fake_graph.accepted] == ["O corte custa R$ 80."]
    run = BotRun.objects.get(conversation=conversation)
    assert (run.outcome, run.engine, run.trigger_id, run.reply_id) == ("replied", "llm", message.pk, reply.pk)
    state = BotState.objects.get(pk=conversation.pk)
    assert (state.handled_through, state.turns, state.lease_token) == (message.pk, 1, "")


def test_it_records_model_tokens_cost_and_latency_on_the_turn(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    # given: a price for the model, and an answer that takes a moment
    ModelPrice.objects.create(model="fake-model", input_per_million=Decimal("2"), output_per_million=Decimal("8"))
    fake_openai.chat(answer("Abrimos às 9h.", tokens_in=1000, tokens_out=50, delay=0.15))

    # when
    message = say(inbox, "Que horas abrem?")

    # then
    run = BotRun.objects.get(conversation=message.conversation)
    assert (run.model, run.tokens_in, run.tokens_out) == ("fake-model", 1000, 50)
    assert run.cost == Decimal("0.002400")
    assert run.llm_ms >= 150
    assert run.latency_ms >= run.llm_ms
    assert run.reply.text == "Abrimos às 9h."


def test_it_reads_only_this_conversations_history(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph, attendant: User
) -> None:
    # given: an earlier conversation, closed, and notes and events in the new one
    fake_openai.chat(answer("Primeira resposta."), answer("Segunda resposta."))
    first = say(inbox, "Meu CPF é 123.456.789-00").conversation
    handoffs.take_over(first, attendant)
    handoffs.close(first, attendant)
    second = say(inbox, "Oi de novo").conversation
    assert second.pk != first.pk

    # then: the second turn's prompt has nothing of the first conversation
    requests = fake_openai.chats()
    assert len(requests) == 2
    assert "123.456.789-00" in user_contents(requests[0])
    assert "123.456.789-00" not in all_contents(requests[1])
    assert "Primeira resposta." not in all_contents(requests[1])
    assert "Oi de novo" in user_contents(requests[1])


def test_it_never_reads_internal_notes(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    attendant: User,
    chat: Conversation,
    line: Callable[..., Message],
) -> None:
    # given: a note between attendants in the conversation
    from conversations import services as conversation_services

    conversation_services.add_note(chat, attendant, "cliente difícil, cuidado")
    line(chat, "Vocês abrem sábado?")

    # when
    pipeline.run_turn(chat.pk)

    # then
    (request,) = fake_openai.chats()
    assert "cliente difícil" not in all_contents(request)
    assert "Vocês abrem sábado?" in user_contents(request)


def test_an_image_with_a_caption_is_read_as_its_caption(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
) -> None:
    # given
    line(chat, type="image", caption="Quero esse corte aqui", media_status=Message.MediaStatus.DONE)

    # when
    run = pipeline.run_turn(chat.pk)

    # then
    assert run is not None and run.outcome == "replied"
    (request,) = fake_openai.chats()
    assert "Quero esse corte aqui" in user_contents(request)


def test_a_photo_without_words_gets_a_request_for_words_and_the_offer_of_a_person(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
) -> None:
    # given: a photo with no caption (the bot cannot see it)
    line(chat, type="image", media_status=Message.MediaStatus.DONE)

    # when
    run = pipeline.run_turn(chat.pk)

    # then: the customer is asked to write, a person is offered, and no model is paid to guess
    assert run is not None and run.outcome == "replied"
    assert fake_openai.chats() == []
    texts = [m.text for m in bot_messages(chat)]
    assert texts[0] == "Thanks, your file arrived, but I cannot see images or documents. Could you write what you need?"
    (menu,) = [m for m in bot_messages(chat) if m.type == "interactive"]
    assert "Talk to an attendant" in str(menu.content)


def test_the_model_reads_that_a_photo_came_before_the_words(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
) -> None:
    # given: a photo with no caption, then the words, in one burst
    line(chat, type="image", media_status=Message.MediaStatus.DONE)
    line(chat, "Essa tela tem conserto?")

    # when
    pipeline.run_turn(chat.pk)

    # then
    (request,) = fake_openai.chats()
    assert "[The customer sent a photo without text; you cannot see it]" in user_contents(request)
    assert "Essa tela tem conserto?" in user_contents(request)


def test_a_sticker_alone_gets_no_answer(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
) -> None:
    # given
    line(chat, type="sticker", media_status=Message.MediaStatus.DONE)

    # when
    run = pipeline.run_turn(chat.pk)

    # then
    assert run is not None and run.outcome == "skipped"
    assert bot_messages(chat) == [] and fake_openai.chats() == []


def test_lines_show_a_tapped_buttons_title_and_id(chat: Conversation, line: Callable[..., Message]) -> None:
    message = line(
        chat,
        "Falar com atendente",
        type="interactive",
        content={"type": "button_reply", "button_reply": {"id": "human", "title": "Falar com atendente"}},
    )
    (result,) = services.lines_for([message])
    assert (result.role, result.text, result.choice_id, result.type) == (
        "customer",
        "Falar com atendente",
        "human",
        "interactive",
    )


def test_lines_summarise_a_location_and_shared_contacts(chat: Conversation, line: Callable[..., Message]) -> None:
    place = line(chat, "Salão, Rua Augusta 100", type="location", content={"latitude": -23.5, "longitude": -46.6})
    contacts = line(chat, "João Souza", type="contacts", content={"contacts": []})
    lines = services.lines_for([place, contacts])
    assert [item.text for item in lines] == ["[Location: Salão, Rua Augusta 100]", "[Shared contacts: João Souza]"]


@pytest.mark.parametrize(
    "failure",
    [error(500), rate_limited(retry_after=0), hang()],
    ids=["provider-error", "rate-limit", "timeout"],
)
def test_a_provider_failure_sends_an_apology_and_queues_the_conversation(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph, failure: object
) -> None:
    # given: the provider fails every attempt (the client's own retries included)
    llm_bot.timeout = 0.5
    llm_bot.save()
    fake_openai.chat(*[failure] * 5)

    # when
    message = say(inbox, "Quanto custa a escova?")

    # then: the customer is not left without an answer, and a person gets the conversation
    conversation = Conversation.objects.get(pk=message.conversation_id)
    (apology,) = bot_messages(conversation)
    assert apology.status == Message.Status.SENT
    # the apology reached Meta (followed by the queue's notice of where the customer stands)
    assert fake_graph.accepted[0]["body"]["text"]["body"] == apology.text
    assert conversation.status == Conversation.Status.QUEUED
    handoff = Handoff.objects.get(conversation=conversation)
    assert handoff.reason == Handoff.Reason.BOT_FAILURE
    run = BotRun.objects.get(conversation=conversation)
    assert run.outcome == "handoff"
    assert run.error


def test_a_refused_send_is_recorded_as_a_failed_turn(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
) -> None:
    # given: sending from the inbox is paused (an expired token, say)
    line(chat, "Oi")
    Inbox.objects.filter(pk=inbox.pk).update(sending_paused_reason="token expired")
    fake_openai.chat(answer("Olá!"))

    # when
    run = pipeline.run_turn(chat.pk)

    # then
    assert run is not None
    assert run.outcome == "failed"
    assert "paused" in run.error
    assert bot_messages(chat) == []
    assert fake_graph.sends() == []


def test_nothing_is_sent_to_a_conversation_a_person_holds(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
    attendant: User,
) -> None:
    line(chat, "Oi")
    handoffs.take_over(chat, attendant)

    assert pipeline.run_turn(chat.pk) is None
    assert fake_openai.chats() == []
    assert bot_messages(chat) == []


def test_back_with_the_bot_it_never_answers_what_a_person_handled(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
    attendant: User,
) -> None:
    # given: a person took the conversation, the customer wrote, the person answered it
    handoffs.take_over(chat, attendant)
    handled = line(chat, "Pode remarcar para sexta?")

    # when: the conversation goes back to the bot
    handoffs.transfer_to_bot(chat, attendant)

    # then: the bot owes nothing; its next reply answers only what comes next
    state = BotState.objects.get(pk=chat.pk)
    assert (state.handled_through, state.turns) == (handled.pk, 0)
    assert pipeline.run_turn(chat.pk) is None
    fake_openai.chat(answer("Claro!"))
    say(inbox, "Obrigada, e o preço?")
    (request,) = fake_openai.chats()
    assert "Obrigada, e o preço?" in user_contents(request)
    assert len(bot_messages(chat)) == 1


def test_the_typing_indicator_is_shown_while_the_bot_works(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    fake_openai.chat(answer("Oi!"))

    message = say(inbox, "Oi")

    reads = [c.json for c in fake_graph.calls("messages") if (c.json or {}).get("status") == "read"]
    assert reads and reads[0]["message_id"] == message.wamid
    assert reads[0].get("typing_indicator") == {"type": "text"}


def test_out_of_hours_only_the_notice_is_sent_once(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    # given: a business that opens one hour a day, an hour from now, and only sends a notice
    # out of hours
    llm_bot.out_of_hours = BotConfig.OutOfHours.MESSAGE
    llm_bot.out_of_hours_message = "Estamos fechados agora."
    llm_bot.timezone = "UTC"
    llm_bot.save()
    opens = (timezone.now() + timedelta(hours=2)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    BusinessHours.objects.create(
        bot=llm_bot, weekday=opens.weekday(), opens=opens.time(), closes=(opens + timedelta(minutes=30)).time()
    )

    # when: two messages while closed
    first = say(inbox, "Oi")
    say(inbox, "Tem alguém aí?")

    # then: one notice, no model call, and the messages stay owed for opening time
    assert [m.text for m in bot_messages(first.conversation)] == ["Estamos fechados agora."]
    assert fake_openai.chats() == []
    state = BotState.objects.get(pk=first.conversation_id)
    assert state.handled_through == 0
    assert state.out_of_hours_notified is not None


def test_record_lead_merges_fields(chat: Conversation) -> None:
    services.record_lead(chat, {"name": "Maria", "service": "corte"})
    services.record_lead(chat, {"service": "escova", "preferred_time": "sexta 10h", "empty": ""})
    assert Lead.objects.get(conversation=chat).data == {
        "name": "Maria",
        "service": "escova",
        "preferred_time": "sexta 10h",
    }


def test_config_for_creates_the_offline_bot_once(inbox: Inbox) -> None:
    first = services.config_for(inbox)
    second = services.config_for(inbox.pk)
    assert first.pk == second.pk
    assert not first.uses_llm
    assert BotConfig.objects.filter(inbox=inbox).count() == 1


def test_with_the_bot_off_the_customer_goes_straight_to_people(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    llm_bot.enabled = False
    llm_bot.save()

    message = say(inbox, "Oi, quanto custa o corte?")

    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.status == Conversation.Status.QUEUED
    assert Handoff.objects.get(conversation=conversation).reason == Handoff.Reason.BOT_DISABLED
    assert fake_openai.chats() == []
    assert bot_messages(conversation) == []
    assert BotRun.objects.get(conversation=conversation).outcome == "handoff"


def test_no_typing_indicator_when_the_inbox_sends_no_read_receipts(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    Inbox.objects.filter(pk=inbox.pk).update(read_receipts=False)
    fake_openai.chat(answer("Oi!"))

    say(inbox, "Oi")

    assert [c.json.get("status") for c in fake_graph.calls("messages")] == [None]
    assert [a["body"]["text"]["body"] for a in fake_graph.accepted] == ["Oi!"]


def test_a_model_that_says_nothing_does_not_leave_the_customer_waiting(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    # given: the model answers with no text and no tool call
    fake_openai.chat(*[answer("")] * 4)

    # when
    message = say(inbox, "Quanto custa a progressiva?")

    # then: the customer is answered, and a person gets the conversation if the bot had nothing
    sent = bot_messages(message.conversation_id)
    assert sent and sent[0].text.strip()
    conversation = Conversation.objects.get(pk=message.conversation_id)
    run = BotRun.objects.get(conversation=conversation)
    assert run.outcome in ("replied", "handoff")
    if run.outcome == "handoff":
        assert conversation.status == Conversation.Status.QUEUED


def test_a_process_reads_its_bots_configuration_once_a_while_and_again_at_once_after_a_save(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph, settings: Any
) -> None:
    # given: configurations kept a minute, and a first turn that read it
    settings.BOT_CONFIG_CACHE_SECONDS = 60
    say(inbox, "Oi")

    # when: the customer writes again
    with CaptureQueriesContext(connection) as queries:
        say(inbox, "Quanto custa o corte?")

    # then: that turn asked nothing about the bot, its hours or its prices
    read = " ".join(q["sql"] for q in queries.captured_queries)
    assert "bots_botconfig" not in read and "bots_businesshours" not in read and "bots_modelprice" not in read
    assert len(fake_openai.chats()) == 2

    # when: someone saves a change (here, in this process), then the customer writes
    llm_bot.model = "outro-modelo"
    llm_bot.save()
    say(inbox, "E a escova?")

    # then: the next turn already uses it
    assert [chat["model"] for chat in fake_openai.chats()][-1] == "outro-modelo"
