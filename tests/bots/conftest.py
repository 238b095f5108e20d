"""The handoffs tests' fixtures (``team``, ``make_conversation``) for this folder's notice and
rating tests. A conftest scopes them to tests/bots: as a plugin (``pytest_plugins``) they were
global and shadowed the console's own ``make_conversation`` in whatever ran after."""

from __future__ import annotations

from tests.handoffs.conftest import make_conversation, team

__all__ = ["make_conversation", "team"]
