"""Process stored webhook events by hand: what the webhook workers would claim, plus replays, inline.

Safe to run while workers are up: each event is locked while it is applied (a locked one is
skipped and reported as busy) and messages dedupe on their wamid. Unlike the workers it
does not wait for a customer's earlier events: it is the operator's call.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from conversations import processing
from conversations.models import WebhookEvent

BUSY = "busy"


class Command(BaseCommand):
    help = (
        "Process webhook events left pending or failed and due (like the workers, but inline). --flagged also "
        "replays flagged ones (e.g. after adding the missing inbox); --id replays one event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flagged", action="store_true", help="Also reprocess flagged events.")
        parser.add_argument("--id", type=int, dest="event_id", help="Reprocess this one event, whatever its state.")
        parser.add_argument("--limit", type=int, default=500, help="At most this many events (default 500).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        if options["event_id"] is not None:
            states = self._one(options["event_id"])
        else:
            states = self._many(flagged=options["flagged"], limit=options["limit"])
        total = sum(states.values())
        summary = ", ".join(f"{state}: {count}" for state, count in sorted(states.items())) or "nothing to do"
        self.stdout.write(f"Processed {total} events ({summary}).")

    def _one(self, event_id: int) -> Counter[str]:
        event = WebhookEvent.objects.filter(pk=event_id).only("pk", "signature_valid", "body_purged").first()
        if event is None:
            raise CommandError(f"No webhook event #{event_id}.")
        if not event.signature_valid:
            # Processing an unsigned body would let anyone who can reach the webhook inject messages.
            raise CommandError(f"Webhook event #{event_id} has an invalid signature: not processed.")
        if event.body_purged is not None:
            raise CommandError(
                f"Webhook event #{event_id}: its body was emptied on {event.body_purged:%Y-%m-%d} after the "
                "retention period (WEBHOOK_RETENTION_DAYS); nothing to replay."
            )
        return Counter([self._process(event_id, force=True)])

    def _many(self, *, flagged: bool, limit: int) -> Counter[str]:
        # The operator asked for them now, so they are applied here rather than queued;
        # and the row lock keeps a queued task and this command from applying one twice.
        query = Q(pk__in=WebhookEvent.objects.due().values("pk"))
        if flagged:
            query |= Q(state=WebhookEvent.State.FLAGGED, signature_valid=True)
        ids = list(WebhookEvent.objects.filter(query).order_by("received", "pk").values_list("pk", flat=True)[:limit])
        # Flagged events are finished as far as process_event knows, so they need force; the
        # others must not be forced (a due event another worker just finished stays finished).
        flagged_ids = set(
            WebhookEvent.objects.filter(pk__in=ids, state=WebhookEvent.State.FLAGGED).values_list("pk", flat=True)
        )
        return Counter(self._process(pk, force=pk in flagged_ids) for pk in ids)

    def _process(self, pk: int, *, force: bool) -> str:
        """Apply one event in its own transaction and return the state it ended in."""
        event = processing.process_event(pk, force=force)
        return event.state if event is not None else BUSY
