"""The webhook's storage fast path: keep every POST byte for byte before it is answered.

This is the one place that talks to libpq directly, and only for one INSERT. The measurement
that justifies it is in docs/benchmarks.md: through the ORM the INSERT cost about 0.39 ms of
client CPU, through a psycopg cursor about 0.22 ms, this way about 0.04 ms.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time

import psycopg
import psycopg.generators
import psycopg.pq
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from conversations.models import WebhookEvent

# The webhook's hot path talks to libpq directly: one statement prepared once per connection,
# parameters sent as they are (the body as binary), no cursor. Through a psycopg cursor the same
# INSERT cost about 0.22 ms of client CPU, through the ORM about 0.39 ms; this costs about
# 0.04 ms (docs/benchmarks.md). `received` is the database's clock at the INSERT.
_STORE_EVENT_STATEMENT = b"atende_store_webhook_event_2"
# The same statement wakes the dispatcher: NOTIFY is delivered when the INSERT commits (and
# never if it rolls back), so the listener (manage.py listen_webhooks) applies the event within
# milliseconds, and the request still publishes nothing to the broker. A CTE rather than a
# trigger: no migration, nothing hidden in the schema, and only validly signed rows notify ($9).
#
# At most one NOTIFY per web process per WEBHOOK_NOTIFY_GAP_MS. PostgreSQL commits notifying
# transactions one at a time (a database-wide lock held through the commit's flush, so that
# notifications keep commit order): under a burst the acknowledgements queued on that lock
# (docs/benchmarks.md, "Processing yields the CPU"). An event stored without a NOTIFY of its
# own follows one of this process's that committed less than the gap before; the listener
# looks again for a moment after each notification (listen_webhooks: RECHECK_EVERY), which
# covers it.
_STORE_EVENT_SQL = (
    b"WITH event AS ("
    b"INSERT INTO conversations_webhookevent (received, body, body_sha256, signature, signature_valid,"
    b" remote_addr, state, route, body_size, fields, attempts, last_error, notes)"
    b" VALUES (statement_timestamp(), $1::bytea, $2, $3, $4::boolean, $5::inet, $6, $7, $8::integer, '', 0, '', '')"
    b" RETURNING id)"
    b" SELECT id, CASE WHEN $9::boolean THEN pg_notify('atende_webhook_stored', '') END FROM event"
)
NOTIFY_CHANNEL = "atende_webhook_stored"  # as in _STORE_EVENT_SQL
# When this process's last NOTIFY committed (time.monotonic()); threads share it, and a race
# between two of them only sends one NOTIFY more.
_last_notify = -1e9


def forget_last_notify() -> None:
    """The next validly signed event notifies, whatever the gap (tests; a new process)."""
    global _last_notify
    _last_notify = -1e9


_BINARY, _TEXT = 1, 0
# Anyone can POST to the webhook: of a body whose signature does not verify we keep its hash,
# its size and this much of it (enough to see what it was), so unsigned traffic cannot fill
# the disk.
REJECTED_BODY_KEEP = 1024


def store_event(body: bytes, *, signature: str, signature_valid: bool, remote_addr: str | None, route: str = "") -> int:
    """Keep the body byte for byte and return the new event's id.

    Outside a transaction (the webhook view) the row is committed when this returns, so it is
    durable before the 200. Database errors come out as Django's ``DatabaseError``."""
    sha256 = hashlib.sha256(body).hexdigest()
    body_size = len(body)
    if not signature_valid:
        body = body[:REJECTED_BODY_KEEP]
    # Whatever a client put in its header is kept for the record, minus what a text column
    # cannot hold; an address that is not one is dropped rather than failing the INSERT.
    signature = signature[:200].replace("\x00", "")
    remote_addr = _ip_or_none(remote_addr)
    state = WebhookEvent.State.PENDING if signature_valid else WebhookEvent.State.REJECTED
    if signature_valid and not route:
        route = route_of(body)
    db = connections[DEFAULT_DB_ALIAS]  # once: every `connection.x` is a thread-local lookup
    if db.vendor == "postgresql" and db.get_autocommit():
        return _store_event_postgresql(
            db, body, sha256, signature, signature_valid, remote_addr, state, route, body_size
        )
    event = WebhookEvent(
        received=timezone.now(),
        body=body,
        body_sha256=sha256,
        signature=signature,
        signature_valid=signature_valid,
        remote_addr=remote_addr,
        state=state,
        route=route[:200],
        body_size=body_size,
    )
    event.save(force_insert=True)
    if signature_valid and db.vendor == "postgresql":
        # Inside a transaction: delivered when the caller commits.
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    return event.pk


# Only bodies this size or smaller get a route: a message body from Meta is a few KB, and
# parsing a 3 MB one would cost the request milliseconds.
ROUTE_MAX_BODY = 64 * 1024


def route_of(body: bytes) -> str:
    """The customer a validly signed body is about, "<phone_number_id>:<wa_id or user id>"
    of its first message or echo; "" for statuses only, other fields or anything unreadable.
    Workers apply one route's events in id order (processing.py). Never raises. Cost in the
    request, measured with a 100,000-run timeit loop on the 2-core dev machine: about 8 µs
    for a one-message text body (450 bytes), 10 µs for a status-only or unreadable one (the
    libpq INSERT itself costs about 40 µs)."""
    if len(body) > ROUTE_MAX_BODY:
        return ""
    try:
        payload = json.loads(body)
        for entry in payload.get("entry") or ():
            for change in entry.get("changes") or ():
                value = change.get("value") or {}
                phone_number_id = (value.get("metadata") or {}).get("phone_number_id")
                for key, who in (("messages", ("from", "from_user_id")), ("message_echoes", ("to", "to_user_id"))):
                    for item in value.get(key) or ():
                        customer = item.get(who[0]) or item.get(who[1])
                        if isinstance(phone_number_id, str) and isinstance(customer, str) and customer:
                            return f"{phone_number_id}:{customer}"[:200]
                        break
    except Exception:  # any shape at all: the route is only an ordering hint
        return ""
    return ""


def _ip_or_none(value: str | None) -> str | None:
    # inet_pton, not the ipaddress module: same answer here at a twentieth of the cost.
    if not value:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
            return value
        except (OSError, ValueError):
            continue
    return None


def _store_event_postgresql(
    db: BaseDatabaseWrapper,
    body: bytes,
    sha256: str,
    signature: str,
    signature_valid: bool,
    remote_addr: str | None,
    state: str,
    route: str,
    body_size: int,
) -> int:
    # get_autocommit() above opened the connection; wrap_database_errors turns psycopg's
    # errors into Django's (the view answers 503 on those).
    global _last_notify
    conn = db.connection
    notify = signature_valid and time.monotonic() - _last_notify >= settings.WEBHOOK_NOTIFY_GAP_MS / 1000
    params = [
        body,
        sha256.encode(),
        signature.encode("utf-8", "replace"),
        b"t" if signature_valid else b"f",
        remote_addr.encode() if remote_addr else None,
        state.encode(),
        route[:200].encode("utf-8", "replace"),
        str(body_size).encode(),
        b"t" if notify else b"f",
    ]
    with db.wrap_database_errors:
        if getattr(conn, "_atende_store_prepared", None) is not conn.pgconn:
            _prepare_store_event(conn)
        result = _execute_store_event(conn, params)
        if result.status == psycopg.pq.ExecStatus.FATAL_ERROR and result.error_field(_SQLSTATE) == b"26000":
            # The server forgot the statement (DISCARD ALL, a pooler in between): prepare again.
            _prepare_store_event(conn)
            result = _execute_store_event(conn, params)
        _check(result, conn, psycopg.pq.ExecStatus.TUPLES_OK)
        if notify:
            # Committed (autocommit): the listener has it. Stamped after the commit, so an
            # event that skips its own NOTIFY always follows a delivered one.
            _last_notify = time.monotonic()
        return int(result.get_value(0, 0))


_SQLSTATE = psycopg.pq.DiagnosticField.SQLSTATE


def _prepare_store_event(conn: psycopg.Connection) -> None:
    pgconn = conn.pgconn
    pgconn.send_prepare(_STORE_EVENT_STATEMENT, _STORE_EVENT_SQL)
    result = conn.wait(psycopg.generators.execute(pgconn))[-1]
    # 42P05: already prepared in this session (we lost track of it after an error), which is fine.
    if result.error_field(_SQLSTATE) != b"42P05":
        _check(result, conn, psycopg.pq.ExecStatus.COMMAND_OK)
    conn._atende_store_prepared = pgconn


def _execute_store_event(conn: psycopg.Connection, params: list[bytes | None]) -> psycopg.pq.abc.PGresult:
    pgconn = conn.pgconn
    pgconn.send_query_prepared(
        _STORE_EVENT_STATEMENT, params, param_formats=[_BINARY, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT]
    )
    return conn.wait(psycopg.generators.execute(pgconn))[-1]


def _check(result: psycopg.pq.abc.PGresult, conn: psycopg.Connection, expected: int) -> None:
    if result.status != expected:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
