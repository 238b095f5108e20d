"""The webhook's storage fast path: keep every POST byte for byte before it is answered.

This is the one place that talks to libpq directly, and only for one INSERT. The measurement
that justifies it is in docs/benchmarks.md: through the ORM the INSERT cost about 0.39 ms of
client CPU, through a psycopg cursor about 0.22 ms, this way about 0.04 ms.
"""

from __future__ import annotations

import hashlib
import socket

import psycopg
import psycopg.generators
import psycopg.pq
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from conversations.models import WebhookEvent

# The webhook's hot path talks to libpq directly: one statement prepared once per connection,
# parameters sent as they are (the body as binary), no cursor. Through a psycopg cursor the same
# INSERT cost about 0.22 ms of client CPU, through the ORM about 0.39 ms; this costs about
# 0.04 ms (docs/benchmarks.md). `received` is the database's clock at the INSERT.
_STORE_EVENT_STATEMENT = b"atende_store_webhook_event"
_STORE_EVENT_SQL = (
    b"INSERT INTO conversations_webhookevent (received, body, body_sha256, signature, signature_valid,"
    b" remote_addr, state, route, body_size, fields, attempts, last_error, notes)"
    b" VALUES (statement_timestamp(), $1::bytea, $2, $3, $4::boolean, $5::inet, $6, $7, $8::integer, '', 0, '', '')"
    b" RETURNING id"
)
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
    return event.pk


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
    conn = db.connection
    params = [
        body,
        sha256.encode(),
        signature.encode("utf-8", "replace"),
        b"t" if signature_valid else b"f",
        remote_addr.encode() if remote_addr else None,
        state.encode(),
        route[:200].encode("utf-8", "replace"),
        str(body_size).encode(),
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
        _STORE_EVENT_STATEMENT, params, param_formats=[_BINARY, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT]
    )
    return conn.wait(psycopg.generators.execute(pgconn))[-1]


def _check(result: psycopg.pq.abc.PGresult, conn: psycopg.Connection, expected: int) -> None:
    if result.status != expected:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
