"""How long raw webhook bodies are kept.

A body is what Meta sent, byte for byte: every message's text and the customer's profile, up
to 3 MB each. Once an event is applied its rows hold what we need, so after
``WEBHOOK_RETENTION_DAYS`` the body is emptied (``body_purged`` says when); the row stays, with
its hash, size and notes, for the record. Rejected (badly signed) events keep only their first
KB and go the same way. Flagged and failed events keep theirs until someone handles them: a
replay needs the body.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from conversations.models import WebhookEvent

logger = logging.getLogger(__name__)

PURGEABLE_STATES = (WebhookEvent.State.DONE, WebhookEvent.State.REJECTED)


def purge_webhook_bodies(
    *, days: int | None = None, batch_size: int = 500, max_batches: int = 200, now: datetime | None = None
) -> int:
    """Empty the bodies of done and rejected events received more than ``days`` ago (default
    WEBHOOK_RETENTION_DAYS), ``batch_size`` rows per statement, each committed on its own so a
    big backlog never holds long locks or one huge transaction. Returns how many were purged;
    what ``max_batches`` leaves over is taken by the next run."""
    days = settings.WEBHOOK_RETENTION_DAYS if days is None else days
    if days < 1:
        raise ValueError("the retention period is at least one day")
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    purgeable = WebhookEvent.objects.filter(state__in=PURGEABLE_STATES, received__lt=cutoff, body_purged__isnull=True)
    total = 0
    for _batch in range(max_batches):
        ids = list(purgeable.order_by("received", "pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        # The filter again in the UPDATE: an event replayed (and flagged) since we listed it
        # keeps its body.
        total += purgeable.filter(pk__in=ids).update(body=b"", body_purged=now)
        if len(ids) < batch_size:
            break
    if total:
        logger.info("purged the bodies of %s webhook events received before %s", total, cutoff.isoformat())
    return total
