"""Celery tasks: thin, idempotent, each looks its row up by id and calls a service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from conversations import delivery, dispatch, jobs, media, processing, retention

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def process_webhook_event(event_id: int) -> None:
    """The embedded mode's inline run of one event (the view queues it eagerly)."""
    processing.process_event(event_id)


# Not acks_late (the default in settings): a wake-up carries nothing, so losing one costs
# nothing (the next sweep or notification sends another), while an unacked one would come back
# after the visibility timeout as a useless duplicate. What must not be lost is in the rows.
@shared_task(acks_late=False, ignore_result=True)
def process_webhooks() -> int:
    """Wake-up: claim and apply due events until none is left or WEBHOOK_LOOP_SECONDS pass,
    then queue the next wake-up if more may be due (other tasks of this queue get a turn)."""
    applied, more = processing.process_due()
    if more:
        dispatch.wake_workers(1)
    return applied


@shared_task(acks_late=False, ignore_result=True)
def dispatch_webhook_events() -> int:
    """Beat's per-second safety net behind the listener: wake the workers when events are due
    (notifications lost while the listener was down, retries that came due). Queues at most
    WEBHOOK_WAKEUPS wake-ups in all, however long the backlog."""
    dispatch.heartbeat()
    if not dispatch.anything_due(timezone.now()):
        return 0
    return dispatch.wake_workers()


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


@shared_task(ignore_result=True)
def purge_webhook_bodies() -> int:
    """Retention: empty the bodies of old processed webhook events (conversations/retention.py)."""
    return retention.purge_webhook_bodies()


@shared_task(ignore_result=True)
def sync_message_templates() -> int:
    """Keep every inbox's message templates in step with Meta (conversations/templates_sync.py).
    Idempotent: a second run changes nothing. One inbox failing does not stop the others."""
    from conversations import templates_sync

    changed = 0
    for inbox_id in templates_sync.syncable_inboxes():
        try:
            changed += templates_sync.sync_inbox_id(inbox_id).total
        except Exception:
            logger.exception("could not sync the message templates of inbox %s", inbox_id)
    return changed
