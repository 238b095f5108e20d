"""What applying a webhook costs in queries: the steady state is most of the traffic."""

from __future__ import annotations

import json

import pytest

from conversations.models import Message
from conversations.whatsapp import intake
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, text_payload


def _signed(body: dict) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, sign(raw, TEST_SECRET)


@pytest.mark.django_db
def test_it_applies_a_new_text_message_in_five_queries_in_steady_state(
    inbox, post_webhook, django_assert_max_num_queries
) -> None:
    # given: the customer and the open conversation exist
    post_webhook(text_payload("wamid.FIRST", "Oi", timestamp=1_750_000_000))
    raw, header = _signed(text_payload("wamid.NEXT", "Queria marcar um horário", timestamp=1_750_000_060))

    # when: inbox, open conversation with its customer (locked), "known or awaited?", insert,
    # conversation timestamps
    with django_assert_max_num_queries(5):
        report = intake.process_body(raw, signature=header)

    # then
    assert (report.created, report.flags, report.errors) == (1, [], [])
    message = Message.objects.get(wamid="wamid.NEXT")
    assert message.conversation.last_inbound == message.wa_timestamp


@pytest.mark.django_db
def test_it_applies_a_reply_in_five_queries_in_steady_state(inbox, post_webhook, django_assert_max_num_queries) -> None:
    # given
    post_webhook(text_payload("wamid.ASKED", "Tem horário amanhã?"))
    body = text_payload("wamid.REPLY", "Às 10h serve?", timestamp=1_750_000_060)
    body["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = {"from": "5511987654321", "id": "wamid.ASKED"}
    raw, header = _signed(body)

    # when
    with django_assert_max_num_queries(5):
        intake.process_body(raw, signature=header)

    # then
    assert Message.objects.get(wamid="wamid.REPLY").reply_to == Message.objects.get(wamid="wamid.ASKED")


@pytest.mark.django_db
def test_it_recognises_a_duplicate_in_three_queries(inbox, post_webhook, django_assert_max_num_queries) -> None:
    # given: Meta retrying a message already applied
    post_webhook(text_payload("wamid.AGAIN"))
    raw, header = _signed(text_payload("wamid.AGAIN"))

    # when
    with django_assert_max_num_queries(3):
        report = intake.process_body(raw, signature=header)

    # then
    assert (report.created, report.duplicates) == (0, 1)


@pytest.mark.django_db
def test_a_new_customers_first_message_looks_for_no_earlier_conversation_of_theirs(
    inbox, django_assert_max_num_queries
) -> None:
    # given: a customer never seen, in an inbox that reopens recent conversations
    inbox.reopen_hours = 24
    inbox.save(update_fields=["reopen_hours"])
    raw, header = _signed(text_payload("wamid.NEWCUSTOMER", "Oi, vocês atendem sábado?"))

    # when: inbox, open conversation (none), "known or awaited?", customer by wa_id (none), the
    # customer's insert (savepoint, insert, release), the conversation's (the same three), the
    # message's (the same three), conversation timestamps
    with django_assert_max_num_queries(14):
        report = intake.process_body(raw, signature=header)

    # then
    assert (report.created, report.errors) == (1, [])
    message = Message.objects.get(wamid="wamid.NEWCUSTOMER")
    assert message.conversation.status == "bot" and message.conversation.customer.wa_id == "5511987654321"
