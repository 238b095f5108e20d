"""The webhook's store path on PostgreSQL: a statement prepared once per connection, sent
straight through libpq in autocommit. These tests run outside a test transaction, like the
webhook view does in production."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from conversations.models import WebhookEvent
from conversations.whatsapp import store as webhook_store
from tests.conftest import text_payload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# NUL bytes, bytes that are not UTF-8, accents and an emoji: stored exactly as received.
AWKWARD_BODY = b'{"a": "\x00\xff\xfe ol\xc3\xa1 \xf0\x9f\x98\x80"}\r\n\x00'


def store(body: bytes = AWKWARD_BODY, **kwargs: object) -> WebhookEvent:
    options = {"signature": "sha256=abc", "signature_valid": True, "remote_addr": "127.0.0.1"} | kwargs
    event_id = webhook_store.store_event(body, **options)
    return WebhookEvent.objects.get(pk=event_id)


def test_it_commits_the_body_byte_for_byte_before_returning() -> None:
    # given
    before = timezone.now()

    # when
    event = store()

    # then: committed (the test runs in autocommit) and identical to what arrived
    assert connection.get_autocommit()
    assert bytes(event.body) == AWKWARD_BODY
    assert event.body_sha256 == hashlib.sha256(AWKWARD_BODY).hexdigest()
    assert event.signature == "sha256=abc"
    assert event.signature_valid is True
    assert event.state == WebhookEvent.State.PENDING
    assert event.remote_addr == "127.0.0.1"
    assert event.attempts == 0
    assert before - timedelta(seconds=5) <= event.received <= timezone.now() + timedelta(seconds=5)


def test_it_keeps_an_invalid_signature_as_rejected() -> None:
    # when
    event = store(signature="sha256=" + "0" * 64, signature_valid=False)

    # then
    assert event.state == WebhookEvent.State.REJECTED
    assert event.signature_valid is False


def test_it_keeps_a_hostile_signature_header_and_drops_an_address_that_is_not_one() -> None:
    # when: a header with a NUL byte, a lone surrogate and far too long; a garbage address
    event = store(signature="sha256=\x00zz\udc80" + "x" * 500, remote_addr="not-an-ip")

    # then: stored, not failed
    assert event.signature.startswith("sha256=zz?")
    assert len(event.signature) == 199
    assert event.remote_addr is None


def test_it_stores_an_ipv6_address() -> None:
    assert store(remote_addr="::1").remote_addr == "::1"


def test_it_prepares_the_insert_again_after_a_reconnect() -> None:
    # given
    first = store()
    connection.close()

    # when
    second = store()

    # then
    assert second.pk > first.pk
    assert WebhookEvent.objects.count() == 2


def test_it_prepares_the_insert_again_when_the_server_forgot_it() -> None:
    # given: a pooler or DISCARD ALL dropped the session's prepared statements
    store()
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    # when
    event = store(b"{}")

    # then
    assert bytes(event.body) == b"{}"
    assert WebhookEvent.objects.count() == 2


def test_it_raises_djangos_database_error_when_the_row_cannot_be_written() -> None:
    # given: the database turned read-only under us (a failover, a full disk)
    store()
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    try:
        # when / then
        with pytest.raises(DatabaseError, match="read-only"):
            webhook_store.store_event(b"{}", signature="", signature_valid=True, remote_addr=None)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")
    assert WebhookEvent.objects.count() == 1


def test_it_answers_503_and_keeps_nothing_when_the_database_refuses_the_row(inbox, post_webhook) -> None:
    # given
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    try:
        # when
        response = post_webhook(text_payload("wamid.READONLY"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")

    # then: Meta sees a failure and retries later
    assert response.status_code == 503
    assert WebhookEvent.objects.count() == 0

    # when: the database is writable again, Meta's retry goes through
    response = post_webhook(text_payload("wamid.READONLY"))

    # then
    assert response.status_code == 200
    assert json.loads(bytes(WebhookEvent.objects.get().body))["entry"][0]["id"]


def test_it_carries_on_when_the_statement_is_already_prepared_in_the_session() -> None:
    # given: the statement exists on the server but this connection lost track of it
    store()
    del connection.connection._atende_store_prepared

    # when
    event = store(b"[]")

    # then
    assert bytes(event.body) == b"[]"
