"""bots.llm against the fake provider, through the real openai client over HTTP."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bots import llm
from bots.models import BotConfig
from tests.fake_openai import (
    DEFAULT_ANSWER,
    DEFAULT_TRANSCRIPT,
    FakeOpenAI,
    Reply,
    answer,
    call,
    dropped,
    error,
    hang,
    rate_limited,
    tool_calls,
    transcript,
)
from tests.fake_openai import (
    TEST_KEY as FAKE_OPENAI_KEY,
)

pytest_plugins = ["tests.conftest_openai"]

HELLO = [{"role": "user", "content": "Oi, quanto custa o corte?"}]


def test_it_returns_a_plain_answer_with_usage(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(answer("O corte custa R$ 80.", tokens_in=321, tokens_out=12, model="fake-model-2025"))

    result = llm.chat(llm_bot, HELLO)

    assert result.text == "O corte custa R$ 80."
    assert result.tool_calls == []
    assert (result.tokens_in, result.tokens_out, result.model) == (321, 12, "fake-model-2025")
    assert result.ms >= 0
    sent = fake_openai.chats()[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"] == HELLO
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 500
    # No tools: neither tools nor tool_choice is sent (some providers refuse an empty list).
    assert "tools" not in sent and "tool_choice" not in sent
    assert fake_openai.calls("chat")[0].headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"


def test_it_answers_by_default_with_the_last_user_line(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    result = llm.chat(llm_bot, HELLO)

    assert result.text == f"{DEFAULT_ANSWER} Oi, quanto custa o corte?"
    assert result.tokens_in > 0 and result.tokens_out > 0


def test_it_sends_only_standard_parameters_with_tools(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "business_hours", "parameters": {"type": "object"}}}]

    llm.chat(llm_bot, HELLO, tools)

    sent = fake_openai.chats()[0]
    assert set(sent) == {"model", "messages", "temperature", "max_tokens", "tools", "tool_choice"}
    assert sent["tool_choice"] == "auto"
    assert sent["tools"] == tools


def test_it_reads_tool_calls(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(
            call("handoff_to_human", {"reason": "complaint", "priority": 2, "summary": "Cliente irritada"}, id="c1"),
            call("business_hours", id="c2"),
            tokens_in=50,
            tokens_out=7,
        )
    )

    result = llm.chat(llm_bot, HELLO, [])

    assert result.text == ""
    assert result.tool_calls == [
        llm.ToolCall(
            id="c1",
            name="handoff_to_human",
            arguments={"reason": "complaint", "priority": 2, "summary": "Cliente irritada"},
            raw='{"reason": "complaint", "priority": 2, "summary": "Cliente irritada"}',
        ),
        llm.ToolCall(id="c2", name="business_hours", arguments={}, raw="{}"),
    ]
    assert (result.tokens_in, result.tokens_out) == (50, 7)


def test_it_flags_malformed_tool_arguments_instead_of_crashing(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(
        tool_calls(call("record_lead", '{"fields": {"name": "Ana"', id="bad"), call("search_knowledge", "[1]"))
    )

    result = llm.chat(llm_bot, HELLO)

    assert [(c.name, c.arguments, c.valid) for c in result.tool_calls] == [
        ("record_lead", {}, False),
        ("search_knowledge", {}, False),
    ]
    assert result.tool_calls[0].raw == '{"fields": {"name": "Ana"'


def test_it_counts_no_tokens_when_the_provider_sends_no_usage(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(answer("ok", usage=False))

    result = llm.chat(llm_bot, HELLO)

    assert (result.text, result.tokens_in, result.tokens_out) == ("ok", 0, 0)


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (error(500), "provider", 500),
        (error(503), "provider", 503),
        (error(400, "Invalid 'messages'"), "provider", 400),
        (error(401), "config", 401),
        (error(404, "The model `nope` does not exist"), "config", 404),
        (rate_limited(7), "rate_limit", 429),
    ],
)
def test_it_turns_provider_errors_into_llm_errors(
    llm_bot: BotConfig, fake_openai: FakeOpenAI, reply: Reply, kind: str, status: int
) -> None:
    fake_openai.chat(reply)

    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)

    assert caught.value.kind == kind
    assert caught.value.status == status
    # max_retries=0: one request, the customer is answered instead of waiting for retries.
    assert len(fake_openai.calls("chat")) == 1


def test_it_reads_retry_after_of_a_429(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(rate_limited(7))

    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)

    assert caught.value.retry_after == 7.0
    assert "Rate limit" in caught.value.message


def test_a_wrong_key_is_a_config_error(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.api_key = "sk-wrong"

    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)

    assert caught.value.kind == "config"
    assert fake_openai.calls("chat")[0].headers["authorization"] == "Bearer sk-wrong"


def test_it_times_out_on_a_hanging_provider(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.timeout = 0.3
    fake_openai.chat(hang())

    started = time.monotonic()
    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)

    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 2.0
    assert len(fake_openai.calls("chat")) == 1


def test_a_slow_answer_within_the_timeout_arrives(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.timeout = 2.0
    fake_openai.chat(answer("Demorei, mas cheguei.", delay=0.4))

    result = llm.chat(llm_bot, HELLO)

    assert result.text == "Demorei, mas cheguei."
    assert result.ms >= 400


def test_a_dropped_connection_is_a_provider_error(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.chat(dropped())

    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)

    assert caught.value.kind == "provider"


def test_without_base_url_or_model_it_is_a_config_error(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    llm_bot.model = ""
    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)
    assert caught.value.kind == "config"

    llm_bot.model, llm_bot.base_url = "fake-model", ""
    with pytest.raises(llm.LLMError) as caught:
        llm.chat(llm_bot, HELLO)
    assert caught.value.kind == "config"
    assert fake_openai.requests == []


def test_the_key_is_never_in_logs_or_errors(
    llm_bot: BotConfig, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    # A provider that quotes the refused key back in full, in an error and a timeout.
    fake_openai.chat(
        error(500, f"Internal error for key {FAKE_OPENAI_KEY}"), rate_limited(1, f"Slow down {FAKE_OPENAI_KEY}")
    )
    caplog.set_level(logging.DEBUG)
    # The client libraries' own loggers too, at their most talkative.
    for name in ("openai", "httpx", "httpx2", "httpcore", "httpcore2"):
        caplog.set_level(logging.DEBUG, logger=name)

    errors: list[Any] = []
    for _ in range(2):
        with pytest.raises(llm.LLMError) as caught:
            llm.chat(llm_bot, HELLO)
        errors.append(caught.value)

    assert [e.kind for e in errors] == ["provider", "rate_limit"]
    assert "Internal error for key [key]" in errors[0].message
    for e in errors:
        assert FAKE_OPENAI_KEY not in str(e) and FAKE_OPENAI_KEY not in e.message and FAKE_OPENAI_KEY not in repr(e)
    assert "LLM call failed" in caplog.text
    # The libraries' debug lines were captured (so this checks them too).
    assert "Sending HTTP Request" in caplog.text
    assert FAKE_OPENAI_KEY not in caplog.text
    assert FAKE_OPENAI_KEY[-12:] not in caplog.text


def test_it_transcribes_a_voice_note(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    fake_openai.script("transcriptions", transcript("  Queria marcar uma escova amanhã.  "))

    text = llm.transcribe(llm_bot, b"OggS\x00fake-opus", "audio.ogg", "audio/ogg")

    assert text == "Queria marcar uma escova amanhã."
    (upload,) = fake_openai.uploads
    assert (upload.filename, upload.content_type, upload.data) == ("audio.ogg", "audio/ogg", b"OggS\x00fake-opus")
    assert upload.fields["model"] == "whisper-1"
    request = fake_openai.calls("transcriptions")[0]
    assert request.headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"


def test_it_transcribes_by_default_and_fails_like_chat(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    assert llm.transcribe(llm_bot, b"x", "a.ogg", "audio/ogg") == DEFAULT_TRANSCRIPT

    fake_openai.script("transcriptions", error(500))
    with pytest.raises(llm.LLMError) as caught:
        llm.transcribe(llm_bot, b"x", "a.ogg", "audio/ogg")
    assert caught.value.kind == "provider"

    llm_bot.transcription_model = ""
    with pytest.raises(llm.LLMError) as caught:
        llm.transcribe(llm_bot, b"x", "a.ogg", "audio/ogg")
    assert caught.value.kind == "config"
    assert len(fake_openai.calls("transcriptions")) == 2


def test_the_fake_records_a_request_before_holding_it(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    arrived, hold = threading.Event(), threading.Event()
    fake_openai.chat(Reply(json=answer("segurei").json, arrived=arrived, hold=hold))
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(llm.chat(llm_bot, HELLO).text))
    worker.start()

    assert arrived.wait(2)
    assert len(fake_openai.calls("chat")) == 1 and results == []
    hold.set()
    worker.join(2)

    assert results == ["segurei"]


def test_one_client_per_provider_key_and_timeout(llm_bot: BotConfig, fake_openai: FakeOpenAI) -> None:
    first = llm._client(llm_bot)
    assert llm._client(llm_bot) is first
    llm_bot.api_key = "sk-another"
    assert llm._client(llm_bot) is not first
    llm_bot.api_key, llm_bot.timeout = FAKE_OPENAI_KEY, 9.0
    assert llm._client(llm_bot) is not first
    # The key is not part of the cache's keys (only its hash).
    assert all(FAKE_OPENAI_KEY not in repr(key) for key in llm._clients)


def test_llm_is_the_only_module_importing_openai() -> None:
    root = Path(__file__).resolve().parents[2]
    importers = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if relative.parts[0] in {".venv", "node_modules", "tests"} or relative.parts[0].startswith("."):
            continue
        if re.search(r"^\s*(import openai|from openai\b)", path.read_text(encoding="utf-8"), re.MULTILINE):
            importers.append(str(relative))
    assert importers == ["bots/llm.py"]
