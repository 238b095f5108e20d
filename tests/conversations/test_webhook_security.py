"""GET handshake and X-Hub-Signature-256 checks on the raw body."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from conversations import processing
from conversations.models import Alert, Conversation, Customer, Message, WebhookEvent
from conversations.whatsapp.signature import sign, verify
from tests.conftest import TEST_SECRET, load_sample, text_payload


@pytest.mark.django_db
def test_it_echoes_the_challenge_verbatim_when_the_verify_token_matches(client, inbox) -> None:
    response = client.get(
        "/webhooks/whatsapp/",
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify", "hub.challenge": "1158201444.5-x"},
    )

    assert response.status_code == 200
    assert response.content == b"1158201444.5-x"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "123"},
        {"hub.mode": "subscribe", "hub.challenge": "123"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify", "hub.challenge": "123"},
        {},
    ],
)
def test_it_refuses_the_handshake_without_the_right_token(client, inbox, params) -> None:
    response = client.get("/webhooks/whatsapp/", params)

    assert response.status_code == 403
    assert b"123" not in response.content


@pytest.mark.django_db
def test_it_accepts_a_valid_signature(inbox, post_webhook) -> None:
    response = post_webhook(text_payload("wamid.OK"))

    assert response.status_code == 200
    assert Message.objects.filter(wamid="wamid.OK").count() == 1


@pytest.mark.django_db
def test_it_rejects_a_missing_signature_with_401_and_stores_no_message(inbox, post_webhook, caplog) -> None:
    body = json.dumps(text_payload("wamid.NOSIG")).encode()

    response = post_webhook(body, secret=None)

    assert response.status_code == 401
    assert Message.objects.count() == 0
    event = WebhookEvent.objects.get()
    assert (event.signature_valid, event.state, bytes(event.body)) == (False, "rejected", body)
    assert any(r.name == "atende.security" and "missing" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "sha256=nothex",
        "garbage",
    ],
)
def test_it_rejects_a_wrong_signature_with_403(inbox, post_webhook, signature, caplog) -> None:
    response = post_webhook(text_payload("wamid.BAD"), signature=signature)

    assert response.status_code == 403
    assert Message.objects.count() == 0
    assert WebhookEvent.objects.get().state == "rejected"
    assert any(r.name == "atende.security" for r in caplog.records)


@pytest.mark.django_db
def test_it_rejects_a_body_signed_with_another_apps_secret(inbox, post_webhook) -> None:
    response = post_webhook(text_payload("wamid.OTHER"), secret="someone-elses-secret")

    assert response.status_code == 403
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_it_rejects_a_body_with_one_byte_changed(inbox, post_webhook) -> None:
    # given: a signature over the original body
    body = json.dumps(text_payload("wamid.TAMPER", "pagar R$ 10")).encode()
    signature = sign(body, TEST_SECRET)
    tampered = body.replace(b"R$ 10", b"R$ 90")

    # when
    response = post_webhook(tampered, signature=signature)

    # then
    assert response.status_code == 403
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_it_verifies_portuguese_accents_and_emoji_over_the_raw_bytes(inbox, post_webhook) -> None:
    # given: raw UTF-8, as a proxy or a future Meta format could send it
    text = "Olá! Gostaria de marcar consulta amanhã às 14h 😊🦷 — obrigada, João"
    body = json.dumps(text_payload("wamid.ACCENT", text), ensure_ascii=False).encode("utf-8")

    # when
    response = post_webhook(body)

    # then
    assert response.status_code == 200
    assert Message.objects.get(wamid="wamid.ACCENT").text == text
    assert bytes(WebhookEvent.objects.get().body) == body


@pytest.mark.django_db
def test_it_verifies_a_signature_over_metas_escaped_unicode_form(inbox, post_webhook) -> None:
    # given: Meta documents signing the \\uXXXX-escaped form even when the body carries UTF-8
    text = "Atenção: é urgente 🚑"
    raw = json.dumps(text_payload("wamid.ESCAPED", text), ensure_ascii=False).encode("utf-8")
    escaped = json.dumps(text_payload("wamid.ESCAPED", text), ensure_ascii=True).encode("ascii")

    # when
    response = post_webhook(raw, signature=sign(escaped, TEST_SECRET))

    # then
    assert response.status_code == 200
    assert Message.objects.get(wamid="wamid.ESCAPED").text == text


def test_it_signs_like_meta() -> None:
    body = b'{"a":"\\u00e4"}'
    header = sign(body, "s3cret")

    assert re.fullmatch(r"sha256=[0-9a-f]{64}", header)
    assert verify(body, header, ["other", "s3cret"]) == "s3cret"
    assert verify(body, header.upper().replace("SHA256=", "sha256="), ["s3cret"]) == "s3cret"
    assert verify(body + b" ", header, ["s3cret"]) is None
    assert verify(body, header, []) is None


@pytest.mark.django_db
def test_it_checks_each_inboxs_own_app_secret(inbox, post_webhook) -> None:
    # given: a second number on another Meta app
    from conversations.models import Inbox

    Inbox.objects.create(name="Filial", phone_number_id="PNID_2", app_secret="second-app-secret")
    body = text_payload("wamid.SECOND", phone_number_id="PNID_2")

    # when
    response = post_webhook(body, secret="second-app-secret")

    # then
    assert response.status_code == 200
    assert Message.objects.get(wamid="wamid.SECOND").conversation.inbox.phone_number_id == "PNID_2"


@pytest.mark.django_db
def test_it_uses_a_secret_added_after_the_cache_was_filled(inbox, post_webhook) -> None:
    # given: the secrets cache is warm
    post_webhook(text_payload("wamid.WARM"))
    from conversations.models import Inbox

    Inbox.objects.create(name="Nova", phone_number_id="PNID_NEW", app_secret="brand-new-secret")

    # when
    response = post_webhook(text_payload("wamid.NEW", phone_number_id="PNID_NEW"), secret="brand-new-secret")

    # then
    assert response.status_code == 200


@pytest.mark.django_db
def test_it_does_not_process_a_rejected_event_on_replay(inbox, post_webhook) -> None:

    post_webhook(load_sample("01_text_meta.json"), signature="sha256=" + "a" * 64)
    event = WebhookEvent.objects.get()

    processing.process_event(event.pk, force=True)

    assert Message.objects.count() == 0
    event.refresh_from_db()
    assert event.state == "rejected"


# --- One inbox's secret never writes into another inbox ------------------------------------------


@pytest.fixture
def other_inbox(db):
    from conversations.models import Inbox

    return Inbox.objects.create(
        name="Filial", phone_number_id="PNID_B", waba_id="WABA_B", app_secret="b-app-secret", verify_token="b"
    )


@pytest.mark.django_db
def test_it_applies_nothing_to_an_inbox_whose_secret_did_not_sign_the_body(
    inbox, other_inbox, post_webhook, english
) -> None:
    # given: a body for inbox B, signed with inbox A's app secret
    body = text_payload("wamid.INJECTED", "clique aqui: http://golpe.example", phone_number_id="PNID_B")

    # when
    response = post_webhook(body, secret=TEST_SECRET)

    # then: accepted (A's secret is ours) but nothing reaches B, and the event says why
    assert response.status_code == 200
    assert Message.objects.count() == 0
    assert Customer.objects.count() == 0
    assert Conversation.objects.count() == 0
    event = WebhookEvent.objects.get()
    assert event.state == "flagged"
    assert f"messages: not signed with the app secret of inbox {other_inbox.pk}; nothing applied" in event.notes
    assert event.inbox is None


@pytest.mark.django_db
def test_it_applies_a_body_to_inboxes_of_one_app_that_share_its_secret(inbox, post_webhook) -> None:
    # given: two numbers of the same Meta app
    from conversations.models import Inbox

    Inbox.objects.create(name="Filial", phone_number_id="PNID_SAME_APP", app_secret=TEST_SECRET)

    # when
    response = post_webhook(text_payload("wamid.SHARED", phone_number_id="PNID_SAME_APP"), secret=TEST_SECRET)

    # then
    assert response.status_code == 200
    assert Message.objects.get(wamid="wamid.SHARED").conversation.inbox.phone_number_id == "PNID_SAME_APP"
    assert WebhookEvent.objects.get().state == "done"


@pytest.mark.django_db
def test_it_applies_only_the_changes_of_the_inbox_that_signed_a_mixed_body(inbox, other_inbox, post_webhook) -> None:
    # given: one entry for A and one for B, signed with A's secret
    for_a = text_payload("wamid.FOR-A")
    for_b = text_payload("wamid.FOR-B", phone_number_id="PNID_B", wa_id="5521999990000")
    body = {"object": "whatsapp_business_account", "entry": [for_a["entry"][0], for_b["entry"][0]]}

    # when
    post_webhook(body, secret=TEST_SECRET)

    # then
    assert list(Message.objects.values_list("wamid", flat=True)) == ["wamid.FOR-A"]
    assert WebhookEvent.objects.get().state == "flagged"


@pytest.mark.django_db
def test_it_ignores_a_template_or_account_update_for_a_waba_whose_inbox_did_not_sign_it(
    inbox, other_inbox, post_webhook
) -> None:
    # given: account and template news for inbox B's WABA, signed with A's secret
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA_B",
                "changes": [
                    {"field": "account_update", "value": {"event": "ACCOUNT_VIOLATION"}},
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "REJECTED", "message_template_name": "promo", "reason": "SCAM"},
                    },
                ],
            }
        ],
    }

    # when
    post_webhook(body, secret=TEST_SECRET)

    # then
    assert Alert.objects.count() == 0
    assert WebhookEvent.objects.get().state == "flagged"

    # when: the same news signed with B's own secret
    post_webhook(body, secret="b-app-secret")

    # then
    assert sorted(Alert.objects.values_list("inbox_id", "kind")) == [
        (other_inbox.pk, "account"),
        (other_inbox.pk, "template"),
    ]


# --- Secrets reload, rejected bodies --------------------------------------------------------------


@pytest.mark.django_db
def test_it_reloads_the_secrets_at_most_once_a_second_under_a_flood_of_bad_signatures(
    inbox, post_webhook, monkeypatch
) -> None:
    # given: a warm cache and a clock we control
    from conversations import views

    now = [1000.0]
    monkeypatch.setattr(views, "_clock", lambda: now[0])
    post_webhook(text_payload("wamid.WARM"))

    # when: twenty badly signed bodies within one second
    with CaptureQueriesContext(connection) as queries:
        responses = [post_webhook(text_payload(f"wamid.FLOOD{i}"), secret="attacker").status_code for i in range(20)]

    # then: one reload
    assert responses == [403] * 20
    assert len([q for q in queries if '"app_secret"' in q["sql"]]) == 1

    # when: a secret added in the admin, used within that second, then a second later
    from conversations.models import Inbox

    Inbox.objects.create(name="Nova", phone_number_id="PNID_NEW", app_secret="brand-new-secret")
    early = post_webhook(text_payload("wamid.NEW1", phone_number_id="PNID_NEW"), secret="brand-new-secret")
    now[0] += 1.0
    later = post_webhook(text_payload("wamid.NEW2", phone_number_id="PNID_NEW"), secret="brand-new-secret")

    # then: Meta's retry of the refused one goes through
    assert (early.status_code, later.status_code) == (403, 200)


@pytest.mark.django_db
def test_it_keeps_only_the_first_kilobyte_of_a_badly_signed_three_megabyte_body(inbox, post_webhook) -> None:
    # given
    raw = b'{"pad": "' + b"x" * (3 * 1024 * 1024 - 11) + b'"}'
    assert len(raw) == 3 * 1024 * 1024

    # when
    response = post_webhook(raw, signature="sha256=" + "0" * 64)

    # then
    assert response.status_code == 403
    event = WebhookEvent.objects.get()
    assert bytes(event.body) == raw[:1024]
    assert event.body_size == 3 * 1024 * 1024
    assert event.body_sha256 == hashlib.sha256(raw).hexdigest()
    assert event.state == "rejected"


# --- Never a 500 ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_answers_503_not_500_while_the_database_is_unreachable(inbox, client) -> None:
    # given: PostgreSQL unreachable (a closed port) and no secrets cached yet
    raw = json.dumps(text_payload("wamid.DBDOWN")).encode()
    headers = {"HTTP_X_HUB_SIGNATURE_256": sign(raw, TEST_SECRET)}
    connection.close()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = 9
    try:
        # when
        post = client.post("/webhooks/whatsapp/", data=raw, content_type="application/json", **headers)
        get = client.get(
            "/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "test-verify", "hub.challenge": "1"}
        )
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port

    # then: Meta retries later
    assert (post.status_code, get.status_code) == (503, 503)
    assert WebhookEvent.objects.count() == 0

    # when: the database is back, Meta's retry is stored and applied
    retry = client.post("/webhooks/whatsapp/", data=raw, content_type="application/json", **headers)

    # then
    assert retry.status_code == 200
    assert Message.objects.get().wamid == "wamid.DBDOWN"


# --- Chunked bodies -------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_server(transactional_db) -> Iterator[tuple[str, int]]:
    """The project's WSGI app behind gunicorn's own HTTP parser and WSGI environ (chunked
    decoding included), in a thread of this process so it shares the test database."""
    from django.core.wsgi import get_wsgi_application
    from gunicorn import http as gunicorn_http
    from gunicorn.config import Config
    from gunicorn.http import wsgi as gunicorn_wsgi

    app = get_wsgi_application()
    cfg = Config()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, addr = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(30)
            try:
                request = next(gunicorn_http.get_parser(cfg, client, addr))
                response, environ = gunicorn_wsgi.create(request, client, addr, listener.getsockname(), cfg)
                response.force_close()
                result = app(environ, response.start_response)
                try:
                    for part in result:
                        response.write(part)
                    # Read what the client still sends (a refused body) so it gets the answer
                    # rather than a reset connection.
                    environ["wsgi.input"].read()
                    response.close()
                finally:
                    result.close()
            finally:
                client.close()
        connections.close_all()  # this thread's: the test database is dropped after the test

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    thread.join(5)
    listener.close()


def _post_chunked(address: tuple[str, int], raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        # An iterable body and no Content-Length: http.client sends Transfer-Encoding: chunked.
        parts = (raw[i : i + 700] for i in range(0, len(raw), 700))
        conn.request("POST", "/webhooks/whatsapp/", body=parts, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_it_reads_a_chunked_body_whole_behind_gunicorn(inbox, gunicorn_server) -> None:
    # given
    raw = json.dumps(text_payload("wamid.CHUNKED", "mensagem em pedaços " * 50)).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, TEST_SECRET)}

    # when
    status, content = _post_chunked(gunicorn_server, raw, headers)

    # then
    assert (status, content) == (200, b"OK")
    event = WebhookEvent.objects.get()
    assert (bytes(event.body), event.signature_valid) == (raw, True)
    assert Message.objects.get().wamid == "wamid.CHUNKED"


def test_it_refuses_a_chunked_body_over_the_limit_with_413(inbox, gunicorn_server, settings) -> None:
    # given
    settings.WEBHOOK_MAX_BODY_BYTES = 2000
    raw = json.dumps(text_payload("wamid.CHUNKED-BIG", "x" * 3000)).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, TEST_SECRET)}

    # when
    status, _content = _post_chunked(gunicorn_server, raw, headers)

    # then
    assert status == 413
    assert WebhookEvent.objects.count() == 0


def test_it_answers_411_to_a_chunked_body_a_server_cannot_decode(inbox, live_server) -> None:
    # given: Django's development server passes the chunk framing through
    raw = json.dumps(text_payload("wamid.CHUNKED-DEV")).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, TEST_SECRET)}
    address = (live_server.thread.host, live_server.thread.port)

    # when
    status, content = _post_chunked(address, raw, headers)

    # then: a clear reason, not a bad signature
    assert status == 411
    assert b"Content-Length" in content
    assert WebhookEvent.objects.count() == 0
