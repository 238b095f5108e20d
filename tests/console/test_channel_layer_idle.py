"""A websocket with nothing to receive must stay open: the Redis channel layer's blocking read
waits 5 s at a time, and redis-py 8's default socket timeout (also 5 s) used to cut it with a
TimeoutError, which dropped every idle consumer's socket (django/channels_redis#422)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(
    "backend", ["channels_redis.core.RedisChannelLayer", "channels_redis.pubsub.RedisPubSubChannelLayer"]
)
def test_it_keeps_an_idle_receive_waiting_past_the_blocking_read(backend: str) -> None:
    # given: either layer CHANNEL_LAYER_BACKEND may name, with the settings' own configuration
    from django.conf import settings
    from django.utils.module_loading import import_string

    if "CONFIG" not in settings.CHANNEL_LAYERS["default"]:
        pytest.skip("no Redis configured")
    layer = import_string(backend)(**settings.CHANNEL_LAYERS["default"]["CONFIG"])

    async def idle_receive() -> str:
        channel = await layer.new_channel()
        try:
            await asyncio.wait_for(layer.receive(channel), timeout=7)
        except TimeoutError:
            return "still waiting"  # our own deadline: the layer did not fail
        return "received"

    # when / then, in a thread of its own: earlier tests (Playwright's sync API) may keep an
    # event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, idle_receive()).result() == "still waiting"
