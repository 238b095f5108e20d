"""Fixtures for the API tests (each module also loads tests/console/actions_support.py: the
console's team, conversations and logged-in clients): token clients, fresh throttle counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fresh_throttles(settings: Any) -> Iterator[None]:
    """Throttle counters live in the cache (Redis with REDIS_URL) and are keyed by user id:
    one test's requests must not count against the next's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> Callable[[User], APIClient]:
    """A client authenticated by ``user``'s API token (no session: no second factor asked)."""

    def make(user: User) -> APIClient:
        token, _created = Token.objects.get_or_create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make
