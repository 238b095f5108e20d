"""Live events on the channel layer, always published after the transaction commits.

Groups: ``inbox-<id>`` for everything in an inbox (queue, console lists) and
``conversation-<id>`` for one conversation's timeline. The console's consumers render the
server-side HTML fragments; the events carry ids only, never customer text.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def inbox_group(inbox_id: int) -> str:
    return f"inbox-{inbox_id}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def _send(groups: list[str], event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, event)
        except Exception:
            # A live update is a convenience: the data is committed and the page shows it on
            # reload, so a Redis hiccup must not fail intake.
            logger.exception("could not publish %s to %s", event.get("type"), group)


def publish_on_commit(groups: list[str], event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send(groups, event))


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
