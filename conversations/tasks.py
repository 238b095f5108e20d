"""Celery tasks: thin, idempotent, each looks its row up by id and calls a service."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conversations import delivery, jobs, media, processing
from conversations.models import WebhookEvent

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def process_webhook_event(event_id: int) -> None:
    processing.process_event(event_id)


@shared_task(acks_late=True, ignore_result=True)
def process_webhook_events(event_ids: list[int]) -> None:
    """A batch handed out by dispatch_webhook_events."""
    for event_id in event_ids:
        processing.process_event(event_id)


# A queued event whose task has not run by then is handed out again (a lost message, a worker
# killed without acks_late taking effect); processing is idempotent, so a late duplicate is harmless.
REQUEUE_AFTER = timedelta(minutes=10)
DISPATCH_CHUNK = 50


@shared_task(ignore_result=True)
def dispatch_webhook_events(limit: int = 2000) -> int:
    """Hand pending events (and failed ones due for a retry) to the workers, in batches.

    Runs every WEBHOOK_DISPATCH_SECONDS from beat. The webhook view does not publish a task
    per request: that cost more than storing the event (docs/benchmarks.md), and this also
    covers everything the broker missed while it was down."""
    now = timezone.now()
    with transaction.atomic():
        # SKIP LOCKED: two dispatchers (or a slow one overlapping the next run) never hand out
        # the same event twice.
        ids = list(
            WebhookEvent.objects.due(now)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return 0
        WebhookEvent.objects.filter(pk__in=ids).update(next_attempt=now + REQUEUE_AFTER)
    for start in range(0, len(ids), DISPATCH_CHUNK):
        chunk = ids[start : start + DISPATCH_CHUNK]
        if not jobs.enqueue(process_webhook_events.name, chunk):
            # Broker down: give the rest back so the next run (or replay_webhooks) takes them.
            WebhookEvent.objects.filter(pk__in=ids[start:], state=WebhookEvent.State.PENDING).update(
                state=WebhookEvent.State.PENDING, next_attempt=None
            )
            return start
    logger.info("dispatched %s webhook events", len(ids))
    return len(ids)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def download_media(self: Any, message_id: int) -> None:
    """Download one inbound file; on failure retry with backoff while attempts are left
    (the count lives on the row, so the sweep and this task share one budget)."""
    outcome = media.download_message_media(message_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=settings.WHATSAPP_MEDIA_MAX_ATTEMPTS)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def send_message(self: Any, message_id: int) -> None:
    """Deliver one outbound message. Idempotent: only a ``pending`` row is sent, so a duplicate
    delivery or a late retry of a sent message does nothing."""
    outcome = delivery.deliver(message_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=settings.WHATSAPP_SEND_MAX_ATTEMPTS)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def mark_message_read(self: Any, message_id: int, typing: bool = False) -> None:
    retry_in = delivery.deliver_read(message_id, typing=typing)
    if retry_in is not None:
        raise self.retry(countdown=retry_in, max_retries=3)


@shared_task(ignore_result=True)
def sweep_outbound_messages(limit: int = 500) -> int:
    """Mark sends a lost answer left unconfirmed past the window (never sent again
    automatically: a person decides), and queue pending rows whose task was lost (broker down
    when they were stored, worker died)."""
    count = len(delivery.reconcile_unconfirmed(timezone.now(), limit=limit))
    for message_id in delivery.due_pending(timezone.now(), limit=limit):
        jobs.enqueue(jobs.SEND_MESSAGE, message_id)
        count += 1
    if count:
        logger.info("outbound sweep queued %s messages", count)
    return count


@shared_task(ignore_result=True)
def sweep_media_downloads(limit: int = 500) -> int:
    due = media.due_downloads(limit=limit)
    for message_id in due:
        jobs.enqueue(jobs.DOWNLOAD_MEDIA, message_id)
    if due:
        logger.info("media sweep queued %s downloads", len(due))
    return len(due)
