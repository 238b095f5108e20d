"""Live events on the channel layer, always published after the transaction commits.

Groups: ``inbox-<id>`` for everything in an inbox (queue, console lists) and
``conversation-<id>`` for one conversation's timeline. The console's consumers render the
server-side HTML fragments; the events carry ids only, never customer text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def inbox_group(inbox_id: int) -> str:
    return f"inbox-{inbox_id}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


_local = threading.local()


def _send(items: list[tuple[list[str], dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for groups, event in items:
            for group in groups:
                try:
                    await layer.group_send(group, event)
                except Exception:
                    # A live update is a convenience: the data is committed and the page shows
                    # it on reload, so a Redis hiccup must not fail intake.
                    logger.exception("could not publish %s to %s", event.get("type"), group)

    if isinstance(layer, InMemoryChannelLayer):
        # The embedded mode's layer lives in the server's own event loop: run there.
        async_to_sync(send_all)()
    else:
        _loop.run(send_all)


class _PersistentLoop:
    """One event loop per process, in a daemon thread, for publishing from sync code.

    channels-redis keeps its Redis connections per event loop, so async_to_sync (a fresh loop
    each call) paid a new connection per publish: about 8 ms of CPU, most of the cost of
    processing a webhook message. Here the loop, and so the connection, lives on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        # Per process: a Celery or gunicorn worker forked from a parent that had one does not
        # inherit its thread.
        if self._pid != os.getpid() or self._loop is None:
            with self._lock:
                if self._pid != os.getpid() or self._loop is None:
                    loop = asyncio.new_event_loop()
                    threading.Thread(target=loop.run_forever, name="channel-layer", daemon=True).start()
                    self._loop, self._pid = loop, os.getpid()
        return self._loop

    def run(self, coroutine_function: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine_function(), self._ensure())
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()
            logger.warning("live events not published within %ss", timeout)


_loop = _PersistentLoop()


def _deliver(groups: list[str], event: dict[str, Any]) -> None:
    outbox = getattr(_local, "outbox", None)
    if outbox is not None:
        outbox.append((groups, event))
    else:
        _send([(groups, event)])


@contextmanager
def batched() -> Iterator[None]:
    """Collect the events committed inside this block and send them together at its end.
    Events still wait for their commit: one rolled back (savepoint included) is never sent."""
    outermost = getattr(_local, "outbox", None) is None
    if outermost:
        _local.outbox = []
    try:
        yield
    finally:
        if outermost:
            outbox, _local.outbox = _local.outbox, None
            if outbox:
                _send(outbox)


def publish_on_commit(groups: list[str], event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _deliver(groups, event))


def conversation_opened(conversation: Any) -> None:
    publish_on_commit(
        [inbox_group(conversation.inbox_id)],
        {"type": "conversation.opened", "conversation_id": conversation.pk, "inbox_id": conversation.inbox_id},
    )


def message_created(message: Any) -> None:
    conversation = message.conversation
    publish_on_commit(
        [inbox_group(conversation.inbox_id), conversation_group(conversation.pk)],
        {
            "type": "message.created",
            "message_id": message.pk,
            "conversation_id": conversation.pk,
            "inbox_id": conversation.inbox_id,
        },
    )


def message_updated(message: Any, what: str) -> None:
    conversation = message.conversation
    publish_on_commit(
        [conversation_group(conversation.pk)],
        {
            "type": "message.updated",
            "message_id": message.pk,
            "conversation_id": conversation.pk,
            "inbox_id": conversation.inbox_id,
            "what": what,
        },
    )


def conversation_updated(conversation: Any) -> None:
    """Its owner or state changed (taken over, assigned, transferred, closed, reopened): the
    queue, the lists and the open conversation all redraw."""
    publish_on_commit(
        [inbox_group(conversation.inbox_id), conversation_group(conversation.pk)],
        {
            "type": "conversation.updated",
            "conversation_id": conversation.pk,
            "inbox_id": conversation.inbox_id,
            "status": conversation.status,
            "assignee_id": conversation.assignee_id,
        },
    )
