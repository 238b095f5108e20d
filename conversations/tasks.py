"""Celery tasks: thin, idempotent, each looks its row up by id and calls a service."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

from conversations.models import WebhookEvent
from conversations.whatsapp import intake

logger = logging.getLogger(__name__)


def enqueue(task: Any, *args: Any, **kwargs: Any) -> bool:
    """Queue a task; never raise. If the broker is down the row is already committed and a
    periodic sweep (or a manual command) picks it up, so the caller carries on."""
    try:
        task.apply_async(args=args, kwargs=kwargs)
        return True
    except Exception as exc:
        logger.warning("could not queue %s%r: %s", task.name, args, exc)
        return False


@shared_task(acks_late=True, ignore_result=True)
def process_webhook_event(event_id: int) -> None:
    intake.process_event(event_id)


@shared_task(ignore_result=True)
def sweep_webhook_events(limit: int = 500) -> int:
    """Process events left pending (broker was down, worker died) or failed and due again.
    Fresh pending events are skipped: their task is most likely still in the queue."""
    now = timezone.now()
    due = (
        WebhookEvent.objects.due(now)
        .exclude(state=WebhookEvent.State.PENDING, received__gt=now - timedelta(seconds=30))
        .order_by("received")
        .values_list("pk", flat=True)[:limit]
    )
    count = 0
    for event_id in list(due):
        intake.process_event(event_id)
        count += 1
    if count:
        logger.info("webhook sweep processed %s events", count)
    return count


@shared_task(acks_late=True, ignore_result=True)
def download_media(message_id: int) -> None:
    from conversations import media

    media.download_message_media(message_id)
