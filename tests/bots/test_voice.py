"""Voice notes: transcribed through the provider's transcription endpoint when the bot has a
transcription model (the transcript stored on the message and used by the bot); without one
the bot says it cannot listen and offers a person."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bots import pipeline
from bots.models import BotConfig, BotRun
from conversations.models import Conversation, Inbox, Message
from handoffs.models import Handoff
from tests.bots.pipeline_helpers import bot_messages
from tests.conftest import envelope
from tests.fake_graph import FakeGraph
from tests.fake_openai import FakeOpenAI, answer, error, transcript

pytest_plugins = ["tests.conftest_graph", "tests.conftest_openai", "tests.bots.pipeline_support"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]

VOICE = b"OggS\x00fake opus voice note"


def voice_payload(wamid: str, media_id: str = "MEDIA.VOICE") -> dict:
    message = {
        "from": "5511987654321",
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "audio",
        "audio": {"id": media_id, "mime_type": "audio/ogg; codecs=opus", "voice": True},
    }
    return envelope({"contacts": [{"profile": {"name": "Maria"}, "wa_id": "5511987654321"}], "messages": [message]})


def test_a_voice_note_is_transcribed_stored_and_answered(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph, post_webhook: Any
) -> None:
    # given: the customer's voice note at Meta, and what the provider hears in it
    fake_graph.add_media("MEDIA.VOICE", VOICE, "audio/ogg; codecs=opus")
    fake_openai.script("transcriptions", transcript("Vocês abrem no sábado?"))
    fake_openai.chat(answer("Abrimos sim, das 9h às 13h."))

    # when: the webhook arrives (the download, then the bot's turn, run after commit)
    assert post_webhook(voice_payload("wamid.VOICE1")).status_code == 200

    # then: the audio went to the transcription endpoint, its words are on the message
    message = Message.objects.get(wamid="wamid.VOICE1")
    assert message.media_status == Message.MediaStatus.DONE
    (upload,) = fake_openai.uploads
    assert upload.data == VOICE
    assert upload.fields.get("model") == "whisper-1"
    assert message.transcript == "Vocês abrem no sábado?"
    # and the model read them
    (request,) = fake_openai.chats()
    prompt = "\n".join(str(m.get("content")) for m in request["messages"] if m.get("role") == "user")
    assert "Vocês abrem no sábado?" in prompt
    (reply,) = bot_messages(message.conversation_id)
    assert reply.text == "Abrimos sim, das 9h às 13h."
    assert [a["body"]["text"]["body"] for a in fake_graph.accepted] == ["Abrimos sim, das 9h às 13h."]


def test_without_transcription_the_bot_says_it_cannot_listen_and_offers_a_person(
    inbox: Inbox, fake_graph: FakeGraph, post_webhook: Any
) -> None:
    # given: the offline bot (no provider, no transcription)
    fake_graph.add_media("MEDIA.VOICE", VOICE, "audio/ogg; codecs=opus")

    # when
    assert post_webhook(voice_payload("wamid.VOICE2")).status_code == 200

    # then: it says so, and offers a person (a button) or hands the conversation over
    message = Message.objects.get(wamid="wamid.VOICE2")
    assert message.transcript == ""
    sent = bot_messages(message.conversation_id)
    assert sent, "the customer got no answer"
    assert "cannot listen" in sent[0].text
    offered = any(
        m.type == "interactive"
        and "human" in [b["reply"]["id"] for b in m.content.get("action", {}).get("buttons", [])]
        for m in sent
    )
    handed_off = Handoff.objects.filter(conversation_id=message.conversation_id, reason="audio").exists()
    assert offered or handed_off
    assert len(fake_graph.sends()) == len(sent)


def test_a_failed_transcription_leaves_the_audio_unheard(
    inbox: Inbox, llm_bot: BotConfig, fake_openai: FakeOpenAI, fake_graph: FakeGraph, post_webhook: Any
) -> None:
    # given: the transcription endpoint fails
    fake_graph.add_media("MEDIA.VOICE", VOICE, "audio/ogg; codecs=opus")
    fake_openai.script("transcriptions", *[error(500)] * 5)

    # when
    assert post_webhook(voice_payload("wamid.VOICE3")).status_code == 200

    # then: no transcript, no model call about nothing, and the customer is told and offered a person
    message = Message.objects.get(wamid="wamid.VOICE3")
    assert message.transcript == ""
    assert fake_openai.chats() == []
    sent = bot_messages(message.conversation_id)
    assert sent and "cannot listen" in sent[0].text
    run = BotRun.objects.get(conversation_id=message.conversation_id)
    assert run.trigger_id == message.pk
    assert Conversation.objects.get(pk=message.conversation_id).status in ("bot", "queued")


def test_the_turn_waits_for_a_voice_note_still_downloading(
    inbox: Inbox,
    llm_bot: BotConfig,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    chat: Conversation,
    line: Callable[..., Message],
    settings: Any,
) -> None:
    # given: a voice note whose first download attempt failed (more attempts to come)
    audio = line(
        chat,
        type="audio",
        media_id="MEDIA.SLOW",
        media_status=Message.MediaStatus.FAILED,
        media_attempts=1,
    )

    # then: the bot waits rather than say it cannot listen
    assert pipeline.run_turn(chat.pk) is None
    assert bot_messages(chat) == [] and fake_openai.chats() == []

    # when: the downloads are given up
    Message.objects.filter(pk=audio.pk).update(media_attempts=settings.WHATSAPP_MEDIA_MAX_ATTEMPTS)
    run = pipeline.run_turn(chat.pk)

    # then: now the customer hears from the bot
    assert run is not None and run.trigger_id == audio.pk
    sent = bot_messages(chat)
    assert sent and "cannot listen" in sent[0].text
    assert fake_openai.uploads == []
