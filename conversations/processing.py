"""Processing stored webhook events: the database row is the queue.

A worker claims a batch of due events (``FOR UPDATE SKIP LOCKED``), applies them, records
every outcome on its row and commits once. The outcome and its effects commit together, so an
event is applied exactly once even when the worker is killed mid-batch: PostgreSQL rolls the
batch back, its rows are unlocked and still due, and the next wake-up (the listener, or beat's
per-second sweep) takes them. Celery messages only wake workers up; none carries an event id
that could go stale or be lost.

A batch is applied optimistically, in one savepoint for all its events; only when one of them
raises is that savepoint rolled back and the batch applied again event by event, each in a
savepoint of its own, so the failure is recorded on its event alone and its batch-mates are
applied all the same. Outcomes are written with one UPDATE per distinct outcome (usually one
per batch). Per-event savepoints and UPDATEs were three of the eight statements each message
cost (docs/benchmarks.md, "What a processed event costs").
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from conversations import events, services
from conversations.models import Alert, Inbox, WebhookEvent
from conversations.whatsapp.intake import Report, process_body

logger = logging.getLogger(__name__)

# Claims of an event that never reached an outcome: the worker died while its batch was open.
# Kept in the cache (Redis in production), outside the transaction that a death rolls back.
_CLAIMS_KEY = "webhooks:claims:{}"
_CLAIMS_TTL = 24 * 3600


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def process_due(budget: float | None = None) -> tuple[int, bool]:
    """Apply due events batch after batch until none is left or ``budget`` seconds have
    passed. Returns (events applied, whether some may still be due)."""
    budget = settings.WEBHOOK_LOOP_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    total = 0
    while True:
        applied = process_batch()
        total += applied
        if not applied:
            return total, False
        if time.monotonic() >= deadline:
            return total, True


def process_batch(limit: int | None = None) -> int:
    """Claim up to ``limit`` due events, apply them in id order and commit once. Returns how
    many were applied (0: nothing due, or only events waiting behind their customer's)."""
    limit = limit or settings.WEBHOOK_BATCH_SIZE
    now = timezone.now()
    with events.batched(), transaction.atomic():
        claimed = list(WebhookEvent.objects.due(now).select_for_update(skip_locked=True).order_by("pk")[:limit])
        batch = _in_customer_order(claimed)
        if not batch:
            return 0
        _commit_without_waiting_for_disk()
        batch, crashed = _isolate_crash_suspects(batch)
        outcomes = [(event, _crash_report(event, crashed[event.pk])) for event in batch if event.pk in crashed]
        outcomes += _apply_batch([event for event in batch if event.pk not in crashed])
        record_all(outcomes)
    _forget_claims(batch)
    return len(batch)


def _commit_without_waiting_for_disk() -> None:
    """This batch's commit does not wait for its WAL to reach the disk (PostgreSQL's
    ``synchronous_commit`` off, for this transaction only). Safe because the event rows the
    webhook committed synchronously are the durable input: a crash in the fraction of a second
    before the WAL writer flushes loses the whole batch atomically (messages, statuses and the
    events' "done" together), and the events are applied again after the restart, exactly
    once (unique wamid). Anything that depends on the batch and must last (a bot's reply, a
    send) commits synchronously later, which flushes this batch's WAL first. What it saves is
    the disk wait and the flush contention with the acknowledgements' own commits."""
    if connection.vendor == "postgresql" and settings.WEBHOOK_PROCESSING_ASYNC_COMMIT:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _apply_batch(batch: list[WebhookEvent]) -> list[tuple[WebhookEvent, Report]]:
    """Apply locked events inside the caller's transaction: all of them in one savepoint, or,
    when one raises, each in a savepoint of its own (see the module docstring)."""
    if not batch:
        return []
    try:
        with transaction.atomic():
            inboxes: dict[str, Inbox | None] = {}
            return [(event, _process(event, inboxes)) for event in batch]
    except Exception as exc:
        # Rolled back whole (its live events and signals with it): again, one by one.
        logger.warning("webhook batch of %s events failed (%s): applying them one by one", len(batch), exc)
    inboxes = {}
    return [(event, _apply_alone(event, inboxes)) for event in batch]


def _process(event: WebhookEvent, inboxes: dict[str, Inbox | None] | None = None) -> Report:
    return process_body(
        bytes(event.body), signature=event.signature, event_id=event.pk, received=event.received, inboxes=inboxes
    )


def _apply_alone(event: WebhookEvent, inboxes: dict[str, Inbox | None] | None = None) -> Report:
    try:
        # Its own savepoint: a database error here (outside any item's savepoint) rolls back
        # only this event, and the transaction stays usable to record the failure.
        with transaction.atomic():
            return _process(event, inboxes)
    except Exception as exc:  # a bug in intake or a database error: keep the event, retry it later
        logger.exception("webhook event %s failed", event.pk)
        return Report(errors=[f"{type(exc).__name__}: {exc}"])


def _in_customer_order(claimed: list[WebhookEvent]) -> list[WebhookEvent]:
    """Leave out an event whose customer has an earlier event still pending outside this
    batch (another worker holds it): applying it now could put a
    customer's messages out of WhatsApp order. Within the batch they are applied in id order.
    One indexed query (conv_event_route_idx), only when the batch has routed events."""
    routes = {event.route for event in claimed if event.route}
    if not routes:
        return claimed
    ids = [event.pk for event in claimed]
    first_waiting: dict[str, int] = {}
    rows = (
        WebhookEvent.objects.filter(route__in=routes, state=WebhookEvent.State.PENDING, pk__lt=max(ids))
        .exclude(pk__in=ids)
        .order_by()
        .values_list("route", "pk")
    )
    for route, pk in rows:
        first_waiting[route] = min(pk, first_waiting.get(route, pk))
    return [event for event in claimed if not (event.route and event.pk > first_waiting.get(event.route, event.pk))]


def _isolate_crash_suspects(batch: list[WebhookEvent]) -> tuple[list[WebhookEvent], dict[int, int]]:
    """Count this claim of each event before applying it, in the cache (outside the
    transaction a death rolls back). An event claimed before without an outcome was in a batch
    whose worker died; it may be the one that kills whatever applies it (a crash, the OOM
    killer), and would otherwise be claimed forever and take its batch down each time. So a
    batch with such suspects applies only the first of them, alone; one claimed
    WEBHOOK_CRASH_LIMIT times is given up (failed, alert) without being applied again. Two
    cache round trips per batch. Returns the events to handle now and the given-up claims."""
    keys = {event.pk: _CLAIMS_KEY.format(event.pk) for event in batch}
    try:
        seen: dict[str, int] = cache.get_many(list(keys.values()))
    except Exception as exc:  # the cache is a guard, not a dependency: process without it
        logger.warning("could not read webhook claims: %s", exc)
        return batch, {}
    limit = settings.WEBHOOK_CRASH_LIMIT
    crashed = {event.pk: seen[keys[event.pk]] for event in batch if seen.get(keys[event.pk], 0) >= limit}
    suspects = [event for event in batch if event.pk not in crashed and seen.get(keys[event.pk], 0)]
    if suspects:
        logger.warning("webhook event %s was claimed before by a worker that died: applied alone", suspects[0].pk)
        batch = [event for event in batch if event.pk in crashed] + suspects[:1]
    try:
        cache.set_many({keys[event.pk]: seen.get(keys[event.pk], 0) + 1 for event in batch}, _CLAIMS_TTL)
    except Exception as exc:
        logger.warning("could not count webhook claims: %s", exc)
    return batch, crashed


def _forget_claims(batch: list[WebhookEvent]) -> None:
    try:
        cache.delete_many([_CLAIMS_KEY.format(event.pk) for event in batch])
    except Exception as exc:
        logger.warning("could not clear webhook claims: %s", exc)


def _crash_report(event: WebhookEvent, claims: int) -> Report:
    """The outcome of an event given up on without applying it again: failed for good."""
    logger.error("webhook event %s: %s claims without an outcome, not applied again", event.pk, claims)
    with translation.override(settings.LANGUAGE_CODE):
        error = gettext("a worker stopped while applying this event (%(claims)s times): replay it by hand") % {
            "claims": claims
        }
    event.attempts = max(event.attempts, settings.WEBHOOK_MAX_ATTEMPTS - 1)
    return Report(errors=[error])


def process_event(event_id: int, *, force: bool = False) -> WebhookEvent | None:
    """Apply one stored event now (replay, the admin's action, the embedded mode).
    Idempotent: a second run finds every wamid already stored.

    The row stays locked while it is applied, so this and a worker's batch never apply the
    same event at once (a locked event is skipped: None); ``force`` reprocesses flagged or
    finished events."""
    with events.batched(), transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        # A purged body (retention) has nothing left to apply: replaying it would flag a done event.
        if event is None or not event.signature_valid or event.body_purged is not None:
            return event
        if not force and event.state not in (WebhookEvent.State.PENDING, WebhookEvent.State.FAILED):
            return event
        apply(event)
        return event


def apply(event: WebhookEvent) -> None:
    """Apply a locked event inside the caller's transaction and record its outcome on it."""
    record(event, _apply_alone(event))


def record(event: WebhookEvent, report: Report) -> None:
    record_all([(event, report)])


# What an outcome writes on its event.
_OUTCOME_FIELDS = ("attempts", "processed", "inbox", "fields", "notes", "state", "last_error", "next_attempt")


def record_all(outcomes: list[tuple[WebhookEvent, Report]]) -> None:
    """Write each event's outcome on it: one UPDATE per distinct outcome (a batch of plain
    messages is all "done, 1 new": one UPDATE), then alert on those out of attempts."""
    now = timezone.now()
    groups: dict[tuple, list[int]] = {}
    for event, report in outcomes:
        _set_outcome(event, report, now)
        values = tuple(getattr(event, "inbox_id" if name == "inbox" else name) for name in _OUTCOME_FIELDS)
        groups.setdefault(values, []).append(event.pk)
    for values, ids in groups.items():
        changes = dict(zip(_OUTCOME_FIELDS, values, strict=True))
        changes["inbox_id"] = changes.pop("inbox")
        WebhookEvent.objects.filter(pk__in=ids).update(**changes)
    for event, _report in outcomes:
        if event.state == WebhookEvent.State.FAILED and event.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            _alert_given_up(event)


def _set_outcome(event: WebhookEvent, report: Report, now: datetime) -> None:
    event.attempts += 1
    event.processed = now
    event.inbox = report.inbox or event.inbox
    event.fields = ",".join(sorted(report.fields))[:300]
    event.notes = "\n".join([summary(report), *report.flags, *report.notes])
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


def _alert_given_up(event: WebhookEvent) -> None:
    with translation.override(settings.LANGUAGE_CODE):
        title = gettext("Webhook event #%(id)s failed %(attempts)s times and will not be retried") % {
            "id": event.pk,
            "attempts": event.attempts,
        }
    try:
        # A savepoint of its own: the alert must not cost the batch its outcomes.
        with transaction.atomic():
            services.raise_alert(event.inbox, Alert.Kind.WEBHOOK, title, details=event.last_error)
    except Exception:
        logger.exception("could not raise the alert for webhook event %s", event.pk)


def summary(report: Report) -> str:
    """The note shown in the admin, in the workers' language (LANGUAGE_CODE)."""
    return _summary(report.created, report.duplicates, report.statuses, settings.LANGUAGE_CODE)


@functools.lru_cache(maxsize=256)
def _summary(created: int, duplicates: int, statuses: int, language: str) -> str:
    # Cached: nearly every event says "1 new, 0 duplicates, 0 statuses".
    with translation.override(language):
        return ", ".join(
            [
                ngettext("%(count)d new", "%(count)d new", created) % {"count": created},
                ngettext("%(count)d duplicate", "%(count)d duplicates", duplicates) % {"count": duplicates},
                ngettext("%(count)d status", "%(count)d statuses", statuses) % {"count": statuses},
            ]
        )
