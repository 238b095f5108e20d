"""Processing stored webhook events: which event a worker applies, and recording its outcome."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from conversations import events
from conversations.models import WebhookEvent
from conversations.whatsapp.intake import Report, process_body

logger = logging.getLogger(__name__)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def process_event(event_id: int, *, force: bool = False) -> WebhookEvent | None:
    """Apply one stored event. Idempotent: a second run finds every wamid already stored.

    The event row stays locked while it is applied, so a replay and a queued task never apply
    the same event at once; ``force`` reprocesses flagged or finished events (replay)."""
    with events.batched(), transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None or not event.signature_valid:
            return event
        if not force and event.state not in (
            WebhookEvent.State.PENDING,
            WebhookEvent.State.FAILED,
        ):
            return event
        try:
            report = process_body(bytes(event.body), event_id=event.pk, received=event.received)
        except Exception as exc:  # a bug in intake: keep the event and retry it later
            logger.exception("webhook event %s failed", event.pk)
            report = Report(errors=[f"{type(exc).__name__}: {exc}"])
        now = timezone.now()
        event.attempts += 1
        event.processed = now
        event.inbox = report.inbox or event.inbox
        event.fields = ",".join(sorted(report.fields))[:300]
        summary = f"{report.created} new, {report.duplicates} duplicate, {report.statuses} statuses"
        event.notes = "\n".join([summary, *report.flags, *report.notes])
        if report.errors:
            event.state = WebhookEvent.State.FAILED
            event.last_error = "\n".join(report.errors)[:10000]
            event.next_attempt = now + retry_delay(event.attempts)
        elif report.flags:
            event.state = WebhookEvent.State.FLAGGED
            event.last_error = ""
            logger.warning("webhook event %s flagged: %s", event.pk, "; ".join(report.flags))
        else:
            event.state = WebhookEvent.State.DONE
            event.last_error = ""
        event.save(
            update_fields=["attempts", "processed", "inbox", "fields", "notes", "state", "last_error", "next_attempt"]
        )
        return event
