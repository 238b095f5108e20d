"""The ``fake_openai`` fixture: a local fake OpenAI-compatible provider for the test's duration,
and ``llm_bot``: the test inbox's bot pointed at it.

Use it with ``pytest_plugins = ["tests.conftest_openai"]`` in a test module, or import the
fixtures into a conftest (``from tests.conftest_openai import fake_openai  # noqa: F401``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bots.models import BotConfig
from conversations.models import Inbox
from tests.fake_openai import TEST_KEY as FAKE_OPENAI_KEY
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=FAKE_OPENAI_KEY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llm_bot(inbox: Inbox, fake_openai: FakeOpenAI) -> BotConfig:
    """The test inbox's bot using the fake provider (short timeout: the fake answers at once)."""
    config, _ = BotConfig.objects.update_or_create(
        inbox=inbox,
        defaults={
            "base_url": fake_openai.url,
            "model": "fake-model",
            "api_key": FAKE_OPENAI_KEY,
            "timeout": 2.0,
            "transcription_model": "whisper-1",
            "business_name": "Salão Bela Vista",
        },
    )
    return config
