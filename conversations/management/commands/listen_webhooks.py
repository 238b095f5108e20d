"""The dispatcher: apply stored events, or wake the webhook workers, within milliseconds of an
event's commit.

Long-running (compose's ``listener`` service). The webhook's INSERT notifies a PostgreSQL
channel in the same statement (conversations/whatsapp/store.py); this process LISTENs on it.
On a notification it applies one batch of what is due itself (``processing.process_batch``,
with WEBHOOK_LISTENER_APPLIES): at the rates a helpdesk usually sees that is everything, with no
trip through the broker to a worker (about 11 ms of a customer's wait, and the CPU of two
Celery tasks per message). When the batch comes back full there is a backlog: it also tops the
broker up to WEBHOOK_WAKEUPS ``process_webhooks`` wake-ups for the workers, and for
BACKLOG_SECONDS after that only wakes them: under load the work stays with the workers. A burst
of notifications costs one batch or one top-up, not one per message. A web process notifies
at most once per WEBHOOK_NOTIFY_GAP_MS, so after each notification this process looks for due
events every RECHECK_EVERY for a moment. Beat's per-second sweep stays as the safety net for
whatever arrives while this process is down or reconnecting.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from config.warmup import settle
from conversations import dispatch, processing
from conversations.whatsapp.store import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

# How long one wait for a notification lasts: also how often the heartbeat is written and
# the connection checked (a dead server shows up within this).
TICK_SECONDS = 1.0
# After a top-up the listener lets this long pass before the next one: the notifications of
# that moment are then covered by one top-up (a broker round trip, about half a millisecond
# of CPU) instead of one each, which under a load of hundreds of events a second was most of
# this process's CPU. An event stored meanwhile is claimed by a worker already looping or a
# wake-up already queued, or else waits at most this long for its own.
COALESCE_SECONDS = 0.02
RECONNECT_MAX_SECONDS = 10.0
# After a full batch (a backlog) the listener only wakes the workers for this long.
BACKLOG_SECONDS = 1.0
# A web process sends at most one NOTIFY per WEBHOOK_NOTIFY_GAP_MS (conversations/whatsapp/
# store.py): events it stores within that gap notify nobody. So after each notification the
# listener looks for due events every RECHECK_EVERY for RECHECK_SECONDS or three gaps,
# whichever is longer: an event stored without a NOTIFY committed less than a gap after one
# that the listener received. A commit that stalls longer than that is left to beat's sweep.
RECHECK_EVERY = 0.01
RECHECK_SECONDS = 0.1


class Command(BaseCommand):
    help = "Wake the webhook workers as soon as an event is stored (PostgreSQL LISTEN/NOTIFY)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seconds", type=float, default=0.0, help="Stop after this many seconds (0: run until stopped)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
            self.stderr.write("listen_webhooks needs PostgreSQL; the embedded mode applies events in the request.")
            return
        settle()
        stop_at = time.monotonic() + options["seconds"] if options["seconds"] > 0 else None
        delay = 0.5
        while stop_at is None or time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                self._listen(stop_at)
                return
            except (psycopg.Error, DatabaseError) as exc:
                # The database went away (restart, failover): wait a little longer each time
                # it fails again soon, then listen again. Beat's sweep covers the gap.
                connections.close_all()
                delay = 0.5 if time.monotonic() - started > 60 else min(delay * 2, RECONNECT_MAX_SECONDS)
                logger.warning("listen_webhooks: %s; reconnecting in %.1f s", exc, delay)
                time.sleep(delay)

    # Until when (monotonic) a backlog leaves processing to the workers: see _apply_batch.
    dispatch_until = 0.0
    # Until when (monotonic) the listener looks again every RECHECK_EVERY for events that did
    # not notify.
    recheck_until = 0.0

    def _apply_batch(self) -> bool:
        """Apply one batch of due events here. True when that was all there was (nothing for
        the workers); False when the batch was full (a backlog: wake the workers, and leave the
        next BACKLOG_SECONDS to them, so that under load this process goes back to only waking
        them and the acknowledgements keep their share of the machine) or could not be applied
        (the workers try). A lost database connection ends the listening, which reconnects;
        anything else is logged and left to the workers."""
        try:
            applied = processing.process_batch()
        except (psycopg.Error, DatabaseError):
            raise
        except Exception:
            logger.exception("listen_webhooks: could not apply a batch; waking the workers")
            return False
        if applied < settings.WEBHOOK_BATCH_SIZE:
            return True
        self.dispatch_until = time.monotonic() + BACKLOG_SECONDS
        return False

    def _listen(self, stop_at: float | None) -> None:
        params = connections[DEFAULT_DB_ALIAS].get_connection_params()
        params.pop("cursor_factory", None)  # Django's cursor class; a plain one will do
        with psycopg.connect(**params, autocommit=True, application_name="atende listen_webhooks") as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            logger.info("listening for stored webhook events on %s", NOTIFY_CHANNEL)
            # Whatever was stored before LISTEN took effect notified nobody.
            if dispatch.anything_due():
                dispatch.wake_workers()
            beat_at = 0.0
            gap = settings.WEBHOOK_NOTIFY_GAP_MS / 1000
            recheck_for = max(RECHECK_SECONDS, 3 * gap) if gap > 0 else 0.0
            while stop_at is None or time.monotonic() < stop_at:
                if time.monotonic() - beat_at >= TICK_SECONDS:
                    dispatch.heartbeat()
                    beat_at = time.monotonic()
                rechecking = time.monotonic() < self.recheck_until
                # Blocks until a notification arrives or the tick (while rechecking, less) passes.
                wait = RECHECK_EVERY if rechecking else TICK_SECONDS
                if any(True for _ in conn.notifies(timeout=wait, stop_after=1)):
                    # Coalesce: what arrived meanwhile is covered by the same batch or top-up.
                    for _ in conn.notifies(timeout=0.0):
                        pass
                    self.recheck_until = time.monotonic() + recheck_for
                    self._dispatch()
                elif rechecking:
                    # Events stored without a NOTIFY of their own, behind the last one.
                    if dispatch.anything_due():
                        self._dispatch()
                else:
                    conn.execute("SELECT 1")  # a silently dead connection raises here

    def _dispatch(self) -> None:
        """Apply a batch here, or (behind a backlog, or when it was not all) wake the workers."""
        if settings.WEBHOOK_LISTENER_APPLIES and time.monotonic() >= self.dispatch_until and self._apply_batch():
            return
        dispatch.wake_workers()
        time.sleep(COALESCE_SECONDS)
