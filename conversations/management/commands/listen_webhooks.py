"""The dispatcher: wake the webhook workers within milliseconds of an event's commit.

Long-running (compose's ``listener`` service). The webhook's INSERT notifies a PostgreSQL
channel in the same statement (conversations/whatsapp/store.py); this process LISTENs on it
and tops the broker up to WEBHOOK_WAKEUPS ``process_webhooks`` wake-ups. A burst of
notifications costs one top-up, not one task per message, and top-ups are at least
COALESCE_SECONDS apart. Beat's per-second sweep stays as
the safety net for whatever arrives while this process is down or reconnecting.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from conversations import dispatch
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
            while stop_at is None or time.monotonic() < stop_at:
                if time.monotonic() - beat_at >= TICK_SECONDS:
                    dispatch.heartbeat()
                    beat_at = time.monotonic()
                # Blocks until a notification arrives or the tick passes.
                if any(True for _ in conn.notifies(timeout=TICK_SECONDS, stop_after=1)):
                    # Coalesce: what arrived meanwhile is covered by the same top-up.
                    for _ in conn.notifies(timeout=0.0):
                        pass
                    dispatch.wake_workers()
                    time.sleep(COALESCE_SECONDS)
                else:
                    conn.execute("SELECT 1")  # a silently dead connection raises here
