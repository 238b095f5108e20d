"""The reply pipeline's receivers: a customer's new message (or a finished voice-note
download) in a conversation the bot owns queues a reply; a conversation given back to the bot
starts its count of bot replies again and never answers what a person already handled.

Signals come after commit with ids only, possibly twice: each receiver is idempotent (the
reply task answers only what is still unanswered, under a lease).
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from bots import pipeline, services
from bots.models import BotConfig, BotState, BusinessHours, ModelPrice
from conversations import jobs, signals
from conversations.models import Conversation, Inbox, Message
from handoffs.signals import ownership_changed


def _with_bot(conversation_id: int) -> bool:
    return Conversation.objects.filter(pk=conversation_id, status=Conversation.Status.BOT).exists()


# Each inbox's burst wait, read once per process and this often again: every customer message
# of a bot-owned conversation needs it, and it rarely changes (a save clears it: forget_config).
BURST_CACHE_SECONDS = 30.0
_bursts: dict[int, tuple[float, float]] = {}


def _burst_seconds(inbox_id: int) -> float:
    now = time.monotonic()
    cached = _bursts.get(inbox_id)
    if cached is not None and cached[1] > now:
        return cached[0]
    burst = BotConfig.objects.filter(inbox_id=inbox_id).values_list("burst_seconds", flat=True).first()
    burst = float(BotConfig._meta.get_field("burst_seconds").default if burst is None else burst)
    _bursts[inbox_id] = (burst, now + BURST_CACHE_SECONDS)
    return burst


@receiver(post_save, sender=BotConfig, dispatch_uid="bots.forget_config")
@receiver(post_delete, sender=BotConfig, dispatch_uid="bots.forget_config_deleted")
@receiver(post_save, sender=BusinessHours, dispatch_uid="bots.forget_config_hours")
@receiver(post_delete, sender=BusinessHours, dispatch_uid="bots.forget_config_hours_deleted")
@receiver(post_save, sender=ModelPrice, dispatch_uid="bots.forget_config_price")
@receiver(post_delete, sender=ModelPrice, dispatch_uid="bots.forget_config_price_deleted")
@receiver(post_save, sender=Inbox, dispatch_uid="bots.forget_config_inbox")
def forget_config(sender: Any, **kwargs: Any) -> None:
    """A configuration saved in this process applies at once to this process's next message
    (its burst wait) and turn (the rest)."""
    _bursts.clear()
    services.forget_configs()


def queue_reply(conversation_id: int, inbox_id: int) -> None:
    """Queue the bot's turn a burst's moment from now: lines typed meanwhile get one reply."""
    burst = _burst_seconds(inbox_id)
    if burst > 0:
        jobs.enqueue_on_commit(pipeline.REPLY_TASK, conversation_id, countdown=burst)
    else:
        # No wait configured: a plain task, not one with an ETA the worker holds in its timer.
        jobs.enqueue_on_commit(pipeline.REPLY_TASK, conversation_id)


@receiver(signals.message_received, dispatch_uid="bots.reply_to_message")
def reply_to_message(
    sender: Any, *, conversation_id: int, inbox_id: int, status: str | None = None, type: str = "", **kwargs: Any
) -> None:
    # Intake says who owned the conversation and what the message is: a conversation with a
    # person, or a reaction/edit/deletion, needs no query and no task (the bot answers neither).
    if type in services.SKIPPED_TYPES:
        return
    if status is not None and status != Conversation.Status.BOT:
        return
    if status is not None or _with_bot(conversation_id):
        queue_reply(conversation_id, inbox_id)


@receiver(signals.media_ready, dispatch_uid="bots.reply_to_audio")
def reply_to_audio(sender: Any, *, message_id: int, conversation_id: int, inbox_id: int, **kwargs: Any) -> None:
    """A voice note the turn waited for is downloaded (or given up: then the bot says it cannot
    listen)."""
    is_audio = Message.objects.filter(
        pk=message_id, type="audio", direction=Message.Direction.IN, sender_kind=Message.SenderKind.CUSTOMER
    ).exists()
    if is_audio and _with_bot(conversation_id):
        queue_reply(conversation_id, inbox_id)


def _newest_inbound(conversation_id: int) -> int:
    newest = (
        Message.objects.filter(conversation_id=conversation_id, direction=Message.Direction.IN)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return newest or 0


@receiver(ownership_changed, dispatch_uid="bots.back_to_bot")
def back_to_bot(
    sender: Any, *, conversation_id: int, to_status: str, action: str = "", actor_id: int | None = None, **kwargs: Any
) -> None:
    """Returned (or reopened) to the bot by a person: a fresh count of bot replies, and the
    cursor moves past everything the customer said before, which a person handled. A turn
    still thinking loses its lease, so it sends nothing. (The customer's own reopen, with no
    actor, is the customer's new message: that one the bot answers.)"""
    if to_status != Conversation.Status.BOT or (action == "reopen" and actor_id is None):
        return
    BotState.objects.get_or_create(conversation_id=conversation_id)
    BotState.objects.filter(pk=conversation_id).update(
        turns=0,
        handled_through=_newest_inbound(conversation_id),
        out_of_hours_notified=None,
        lease_token="",
        lease_until=None,
        updated=timezone.now(),
    )


@receiver(signals.conversation_opened, dispatch_uid="bots.reopened")
def reopened(sender: Any, *, conversation_id: int, reopened: bool = False, **kwargs: Any) -> None:
    """The customer wrote again soon after a close: the bot starts counting its replies again."""
    if reopened:
        BotState.objects.filter(pk=conversation_id).update(turns=0, out_of_hours_notified=None, updated=timezone.now())
