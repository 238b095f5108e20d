"""The handoffs tests' fixtures (``team``, ``make_conversation``) for the bots' notice and
rating tests: ``pytest_plugins = ["tests.bots.handoff_support"]``."""

from __future__ import annotations

from tests.handoffs.conftest import make_conversation, team

__all__ = ["make_conversation", "team"]
