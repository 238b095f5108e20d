"""The language model client: any OpenAI-compatible provider (OpenAI, Groq, Gemini's
OpenAI-compatible endpoint, Ollama, vLLM) through the ``openai`` client and a base URL.

The only module that imports ``openai``. It sends only standard parameters (model, messages,
tools, tool_choice, temperature, max_tokens) so every such provider accepts them, never
retries on its own (the engine answers the customer instead of making them wait), and never
logs the API key: error texts from the provider are scrubbed of it before anyone sees them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import openai

from bots.models import BotConfig

logger = logging.getLogger(__name__)

KINDS = ("timeout", "rate_limit", "provider", "config")


class LLMError(Exception):
    """The provider did not give an answer. ``kind``: "timeout", "rate_limit", "provider"
    (an error on its side, a dropped connection, a malformed answer) or "config" (no base URL
    or model, a key it refuses, a model it does not know)."""

    def __init__(self, kind: str, message: str = "", *, status: int | None = None, retry_after: float | None = None):
        assert kind in KINDS, kind
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{kind}: {message}" if message else kind)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    # The arguments as the model wrote them, and whether they were valid JSON (an object).
    raw: str = ""
    valid: bool = True


@dataclass
class ChatResult:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""
    ms: int = 0


# --- clients -------------------------------------------------------------------------------

_clients: dict[tuple[int, str, str, float], openai.OpenAI] = {}
_clients_lock = threading.Lock()
# A few providers per process at most; more means keys or URLs were edited: start afresh.
CLIENTS_MAX = 16


def _client(config: BotConfig) -> openai.OpenAI:
    """One client (and its connection pool) per provider, key and timeout. Keyed by a hash of
    the key so the key itself sits only inside the client, and by process: a connection pool
    must not be shared across a worker's fork."""
    if not config.base_url:
        raise LLMError("config", "no provider base URL")
    key = config.api_key or "none"
    cache_key = (os.getpid(), config.base_url, hashlib.sha256(key.encode()).hexdigest(), float(config.timeout))
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            if len(_clients) >= CLIENTS_MAX:
                _clients.clear()
            client = openai.OpenAI(base_url=config.base_url, api_key=key, timeout=float(config.timeout), max_retries=0)
            _clients[cache_key] = client
        return client


def _scrub(text: str, config: BotConfig) -> str:
    """The provider's words without the key (some providers quote the key they refused)."""
    key = config.api_key
    if key:
        text = text.replace(key, "[key]")
    return text[:500]


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after") if error.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _translate(error: Exception, config: BotConfig) -> LLMError:
    """An ``openai`` exception as our ``LLMError``, logged without the key."""
    if isinstance(error, openai.APITimeoutError):
        result = LLMError("timeout", f"no answer within {config.timeout:g}s")
    elif isinstance(error, openai.RateLimitError):
        result = LLMError(
            "rate_limit", _scrub(error.message, config), status=error.status_code, retry_after=_retry_after(error)
        )
    elif isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError):
        result = LLMError("config", _scrub(error.message, config), status=error.status_code)
    elif isinstance(error, openai.APIStatusError):
        result = LLMError("provider", _scrub(error.message, config), status=error.status_code)
    elif isinstance(error, openai.APIConnectionError):
        result = LLMError("provider", "connection failed: " + _scrub(str(error), config))
    else:
        result = LLMError("provider", _scrub(f"{type(error).__name__}: {error}", config))
    logger.warning(
        "LLM call failed: %s (provider %s, model %s, status %s)",
        result,
        config.base_url,
        config.model,
        result.status,
    )
    return result


# --- calls -----------------------------------------------------------------------------------


def _arguments(raw: str | None) -> tuple[dict[str, Any], bool]:
    if not raw:
        return {}, True
    try:
        value = json.loads(raw)
    except ValueError:
        return {}, False
    return (value, True) if isinstance(value, dict) else ({}, False)


def chat(config: BotConfig, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ChatResult:
    """One chat completion. Raises ``LLMError``."""
    if not config.model:
        raise LLMError("config", "no model")
    client = _client(config)
    params: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        "temperature": float(config.temperature),
        "max_tokens": config.max_tokens,
    }
    if tools:
        params["tools"] = tools
        params["tool_choice"] = "auto"
    started = time.perf_counter()
    try:
        response = client.chat.completions.create(**params)
    except openai.OpenAIError as error:
        raise _translate(error, config) from None
    ms = round((time.perf_counter() - started) * 1000)
    if not getattr(response, "choices", None):
        raise LLMError("provider", "an answer without choices")
    message = response.choices[0].message
    calls = []
    for item in message.tool_calls or []:
        function = getattr(item, "function", None)
        if function is None:
            continue
        arguments, valid = _arguments(function.arguments)
        calls.append(
            ToolCall(id=item.id, name=function.name, arguments=arguments, raw=function.arguments or "", valid=valid)
        )
    usage = response.usage
    return ChatResult(
        text=(message.content or "").strip(),
        tool_calls=calls,
        tokens_in=(usage.prompt_tokens or 0) if usage else 0,
        tokens_out=(usage.completion_tokens or 0) if usage else 0,
        model=response.model or config.model,
        ms=ms,
    )


def transcribe(config: BotConfig, data: bytes, filename: str, mime: str) -> str:
    """A voice note as text through the provider's transcription endpoint (Whisper on OpenAI
    or Groq), model ``config.transcription_model``. Raises ``LLMError``."""
    if not config.transcription_model:
        raise LLMError("config", "no transcription model")
    client = _client(config)
    try:
        result = client.audio.transcriptions.create(
            model=config.transcription_model, file=(filename or "audio", data, mime or "application/octet-stream")
        )
    except openai.OpenAIError as error:
        raise _translate(error, config) from None
    text = result if isinstance(result, str) else getattr(result, "text", "")
    return (text or "").strip()
