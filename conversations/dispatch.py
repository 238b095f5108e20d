"""Waking the webhook workers up, and the heartbeat that shows someone still does.

Stored events wait in the database (the row is the queue, see processing.py). What reaches
the broker is only a wake-up: a ``process_webhooks`` task that carries nothing and makes a
worker claim whatever is due. The listener (``manage.py listen_webhooks``, woken by the
INSERT's NOTIFY) and beat's per-second sweep keep at most WEBHOOK_WAKEUPS of them queued, so
a backlog of any size never grows the broker's queue, and a lost wake-up costs nothing.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from conversations import jobs
from conversations.models import WebhookEvent

logger = logging.getLogger(__name__)

PROCESS_WEBHOOKS = "conversations.tasks.process_webhooks"
WEBHOOKS_QUEUE = "webhooks"
# When the sweep or the listener last ran: /health/ fails when it is old (beat and the
# listener both dead means nothing is processed).
HEARTBEAT_KEY = "webhooks:last-dispatch"


def queued_wakeups() -> int:
    """Wake-ups waiting in the broker (not those a worker already holds)."""
    from celery import current_app
    from kombu.exceptions import ChannelError

    with current_app.pool.acquire(block=True) as conn:
        try:
            return int(conn.default_channel.queue_declare(queue=WEBHOOKS_QUEUE, passive=True).message_count)
        except ChannelError:  # Redis drops an empty list: no such queue means none waiting
            return 0


def wake_workers(target: int | None = None) -> int:
    """Top the broker up to ``target`` queued wake-ups; return how many were queued. Any
    wake-up that runs after an event's commit claims it, so one already waiting is enough for
    that event; more only keep several worker processes busy under load. Never raises: with
    the broker down the events stay due and the next sweep or notification tries again."""
    target = settings.WEBHOOK_WAKEUPS if target is None else target
    try:
        if jobs.task(PROCESS_WEBHOOKS).app.conf.task_always_eager:
            # No broker (embedded mode, tests): one inline run applies everything due.
            return 1 if jobs.enqueue(PROCESS_WEBHOOKS) else 0
        missing = target - queued_wakeups()
    except Exception as exc:
        logger.warning("could not read the webhooks queue: %s", exc)
        return 0
    queued = 0
    for _ in range(missing):
        if not jobs.enqueue(PROCESS_WEBHOOKS):
            break
        queued += 1
    return queued


def anything_due(now: datetime | None = None) -> bool:
    return WebhookEvent.objects.due(now).exists()


def heartbeat() -> None:
    try:
        cache.set(HEARTBEAT_KEY, time.time(), None)
    except Exception as exc:
        logger.warning("could not record the dispatch heartbeat: %s", exc)


def last_dispatch_age() -> float | None:
    """Seconds since the sweep or the listener last ran; None if neither ever did."""
    stamp = cache.get(HEARTBEAT_KEY)
    return None if stamp is None else max(0.0, time.time() - float(stamp))


def oldest_due_age(now: datetime | None = None) -> float | None:
    """Seconds the oldest event that a worker should have applied by now has waited."""
    now = now or timezone.now()
    # A failed event waits from its retry time, not from when it was received.
    since = (
        WebhookEvent.objects.due(now)
        .annotate(since=Greatest("received", Coalesce("next_attempt", "received")))
        .order_by("since")
        .values_list("since", flat=True)
        .first()
    )
    return None if since is None else max(0.0, (now - since).total_seconds())
