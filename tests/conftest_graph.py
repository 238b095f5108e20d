"""The ``fake_graph`` fixture: a local fake of Meta's Graph API, with WHATSAPP_GRAPH_URL
pointing at it for the test's duration.

Use it from tests/conftest.py with ``from tests.conftest_graph import fake_graph  # noqa: F401``
or from a test module with ``pytest_plugins = ["tests.conftest_graph"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fake_graph import FakeGraph


@pytest.fixture
def fake_graph(settings: Any) -> Iterator[FakeGraph]:
    server = FakeGraph().start()
    settings.WHATSAPP_GRAPH_URL = server.url
    # Short enough that the "answer lost" tests stay fast; the fake answers in milliseconds.
    settings.WHATSAPP_HTTP_TIMEOUT = 1.0
    try:
        yield server
    finally:
        server.stop()
