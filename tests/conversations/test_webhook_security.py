"""GET handshake and X-Hub-Signature-256 checks on the raw body."""

from __future__ import annotations

import json
import re

import pytest

from conversations import processing
from conversations.models import Message, WebhookEvent
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
