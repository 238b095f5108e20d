"""The reply pipeline's safety net: customers left without an answer or a decision.

A reply task can be lost (broker down when it was queued, a worker killed before it acked) or
its worker can die holding the conversation's lease. Every BOT_SWEEP_SECONDS the sweep finds
bot-owned conversations whose newest unanswered customer message is older than the burst wait
plus a margin, with no live lease, and queues their turn. Batched: one query per batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from bots import notices, pipeline, services
from bots.models import BotConfig, BotState
from conversations import jobs
from conversations.models import SERVICE_WINDOW, Conversation, Message

# Beyond the burst wait: the time a queued reply normally takes to start.
MARGIN_SECONDS = 10.0
BATCH = 500


def overdue(now: datetime | None = None, *, limit: int = BATCH) -> list[int]:
    """Ids of bot-owned conversations owed a turn now, oldest first."""
    now = now or timezone.now()
    longest_burst = max(
        [*BotConfig.objects.values_list("burst_seconds", flat=True), BotConfig._meta.get_field("burst_seconds").default]
    )
    before = now - timedelta(seconds=longest_burst + MARGIN_SECONDS)
    waiting = Message.objects.filter(
        conversation_id=OuterRef("pk"),
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        created__lt=before,
        # Older than WhatsApp's window nothing can be answered any more (a conversation left
        # from before the bot, a long outage): not worth a turn.
        created__gte=now - SERVICE_WINDOW,
    ).exclude(type__in=services.SKIPPED_TYPES)
    # A conversation never touched by the bot has no state row: everything in it is unanswered.
    waiting = waiting.filter(
        Q(conversation__bot_state__isnull=True) | Q(id__gt=F("conversation__bot_state__handled_through"))
    )
    leased = BotState.objects.filter(conversation_id=OuterRef("pk"), lease_until__gt=now).exclude(lease_token="")
    closed_inboxes = _closed_message_only(now)
    return list(
        Conversation.objects.filter(status=Conversation.Status.BOT)
        .exclude(Q(inbox_id__in=closed_inboxes) & Q(bot_state__out_of_hours_notified__isnull=False))
        .filter(Exists(waiting))
        .exclude(Exists(leased))
        .order_by("last_inbound", "id")
        .values_list("id", flat=True)[:limit]
    )


def _closed_message_only(now: datetime) -> list[int]:
    """Inboxes closed now whose bot only sends the out-of-hours message: their customers who were
    told (once) are answered at opening time, not every sweep."""
    configs = BotConfig.objects.filter(out_of_hours=BotConfig.OutOfHours.MESSAGE)
    return [config.inbox_id for config in configs if not notices.business_open(config, now)[0]]


def queue_unanswered(now: datetime | None = None) -> list[int]:
    ids = overdue(now)
    for conversation_id in ids:
        jobs.enqueue(pipeline.REPLY_TASK, conversation_id)
    return ids
