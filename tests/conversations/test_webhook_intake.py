"""Intake guarantees: nothing lost, nothing doubled, never a 500."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conversations import processing, services, tasks
from conversations.models import Conversation, Customer, Inbox, Message, OrphanStatus, WebhookEvent
from conversations.whatsapp import store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, broker_down, load_sample, status_payload, text_payload


@pytest.mark.django_db
def test_it_stores_an_unchanged_sample_once_when_posted_twice(inbox, post_webhook, english) -> None:
    # given: Meta retrying the very same body
    body = json.dumps(load_sample("01_text_meta.json")).encode()

    # when
    first = post_webhook(body)
    second = post_webhook(body)

    # then
    assert (first.status_code, second.status_code) == (200, 200)
    assert WebhookEvent.objects.count() == 2
    assert Message.objects.count() == 1
    assert "1 duplicate" in WebhookEvent.objects.order_by("id").last().notes


@pytest.mark.django_db
def test_it_stores_one_row_for_a_wamid_repeated_within_one_body(inbox, post_webhook) -> None:
    post_webhook(load_sample("67_batch_two_changes_one_entry_netflie.json"))

    message = Message.objects.get()
    assert message.text == "MESSAGE_BODY"


@pytest.mark.django_db
def test_it_processes_every_entry_change_and_item(inbox, post_webhook) -> None:
    # given: two entries, the second with two changes, one change with two messages and a status
    first = text_payload("wamid.E1")
    second = text_payload("wamid.E2", wa_id="5521999990000", name="João")
    second_value = second["entry"][0]["changes"][0]["value"]
    second_value["messages"].append({**second_value["messages"][0], "id": "wamid.E3", "text": {"body": "e aí?"}})
    second_value["statuses"] = [{"id": "wamid.UNKNOWN", "status": "sent", "timestamp": "1750000000"}]
    third = text_payload("wamid.E4", wa_id="5531988887777", name="Ana")
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            first["entry"][0],
            {"id": "TEST_WABA", "changes": second["entry"][0]["changes"] + third["entry"][0]["changes"]},
        ],
    }

    # when
    post_webhook(body)

    # then
    assert set(Message.objects.values_list("wamid", flat=True)) == {"wamid.E1", "wamid.E2", "wamid.E3", "wamid.E4"}
    assert Customer.objects.count() == 3
    assert OrphanStatus.objects.filter(wamid="wamid.UNKNOWN").count() == 1


def store_signed(body: bytes) -> int:
    """Store a body as the webhook would, signed with the test inbox's app secret."""
    return store.store_event(body, signature=sign(body, TEST_SECRET), signature_valid=True, remote_addr=None)


def _process_in_parallel(event_ids: list[int]) -> list[BaseException]:
    """Process events in as many threads, released at the same instant (a real race on PostgreSQL)."""
    barrier = threading.Barrier(len(event_ids))
    errors: list[BaseException] = []

    def work(event_id: int) -> None:
        try:
            barrier.wait()
            processing.process_event(event_id)
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(pk,)) for pk in event_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_stores_one_row_when_the_same_body_is_processed_in_parallel(inbox) -> None:
    # given: Meta delivering the same body to two subscribed apps, picked up by two workers
    body = json.dumps(text_payload("wamid.RACE", "primeira mensagem", wa_id="5511911112222")).encode()
    events = [store_signed(body) for _ in range(4)]

    # when
    errors = _process_in_parallel(events)

    # then
    assert errors == []
    assert Message.objects.filter(wamid="wamid.RACE").count() == 1
    assert Customer.objects.filter(wa_id="5511911112222").count() == 1
    assert Conversation.objects.filter(customer__wa_id="5511911112222").count() == 1
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"done"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_opens_one_conversation_when_a_new_customers_messages_race(inbox) -> None:
    # given: two different first messages from a new customer, processed at the same moment
    bodies = [json.dumps(text_payload(f"wamid.FIRST{i}", f"oi {i}", wa_id="5511933334444")).encode() for i in range(4)]
    events = [store_signed(b) for b in bodies]

    # when
    errors = _process_in_parallel(events)

    # then
    assert errors == []
    assert Message.objects.count() == 4
    assert Customer.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"done"}


def _outbound(inbox: Inbox, wamid: str) -> Message:
    customer = services.upsert_customer(services.Identity(wa_id="5511987654321", name="Maria"))
    conversation, _ = services.open_conversation(inbox, customer)
    return Message.objects.create(
        conversation=conversation,
        direction="out",
        sender_kind="attendant",
        type="text",
        text="Sua consulta está confirmada",
        wamid=wamid,
        status="sent",
    )


@pytest.mark.django_db
def test_it_never_downgrades_a_status_whatever_order_they_arrive_in(inbox, post_webhook) -> None:
    # given
    message = _outbound(inbox, "wamid.OUT1")

    # when: read first, then delivered, then sent (each a separate webhook)
    post_webhook(status_payload("wamid.OUT1", "read", 1_750_000_300))
    post_webhook(status_payload("wamid.OUT1", "delivered", 1_750_000_200))
    post_webhook(status_payload("wamid.OUT1", "sent", 1_750_000_100))
    post_webhook(status_payload("wamid.OUT1", "delivered", 1_750_000_200))

    # then
    message.refresh_from_db()
    assert message.status == "read"
    assert message.sent_at == datetime.fromtimestamp(1_750_000_100, tz=UTC)
    assert message.delivered_at == datetime.fromtimestamp(1_750_000_200, tz=UTC)
    assert message.read_at == datetime.fromtimestamp(1_750_000_300, tz=UTC)


@pytest.mark.django_db
def test_it_moves_a_voice_note_to_played(inbox, post_webhook) -> None:
    message = _outbound(inbox, "wamid.VOICE")

    post_webhook(status_payload("wamid.VOICE", "played", 1_750_000_400))
    post_webhook(status_payload("wamid.VOICE", "read", 1_750_000_300))

    message.refresh_from_db()
    assert message.status == "played"
    assert message.read_at is not None


@pytest.mark.django_db
def test_it_stores_metas_code_title_and_details_for_a_failed_message(inbox, post_webhook) -> None:
    # given
    message = _outbound(inbox, "51.wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA")

    # when
    post_webhook(load_sample("51_status_failed_131049_meta.json"))

    # then
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.error_code == 131049
    assert message.error_title == "This message was not delivered to maintain healthy ecosystem engagement."
    assert (
        message.error_details
        == "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    )
    assert message.failed_at == datetime.fromtimestamp(1751142888, tz=UTC)


@pytest.mark.django_db
def test_it_lets_a_later_delivery_win_over_a_failure_but_not_the_reverse(inbox, post_webhook) -> None:
    # given
    first = _outbound(inbox, "wamid.MD1")
    second = Message.objects.create(
        conversation=first.conversation, direction="out", sender_kind="bot", type="text", wamid="wamid.MD2"
    )
    error = [{"code": 131026, "title": "Message undeliverable"}]

    # when: failed then delivered (multi-device) / delivered then failed
    post_webhook(status_payload("wamid.MD1", "failed", 1_750_000_100, errors=error))
    post_webhook(status_payload("wamid.MD1", "delivered", 1_750_000_200))
    post_webhook(status_payload("wamid.MD2", "delivered", 1_750_000_100))
    post_webhook(status_payload("wamid.MD2", "failed", 1_750_000_200, errors=error))

    # then
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "delivered"
    assert second.status == "delivered"


@pytest.mark.django_db
def test_it_applies_a_status_that_arrived_before_the_send_answer(inbox, post_webhook) -> None:
    # given: the "delivered" webhook raced ahead of Meta's answer to our send
    message = _outbound(inbox, "wamid.PLACEHOLDER")
    message.wamid = None
    message.status = "sending"
    message.save()
    post_webhook(status_payload("wamid.LATE", "delivered", 1_750_000_200))
    assert OrphanStatus.objects.count() == 1

    # when: the send task stores the wamid from the answer
    services.attach_wamid(message, "wamid.LATE")

    # then
    message.refresh_from_db()
    assert message.status == "delivered"
    assert OrphanStatus.objects.count() == 0


@pytest.mark.django_db
def test_it_links_a_status_to_its_message_by_callback_data_when_the_answer_was_lost(inbox, post_webhook) -> None:
    # given: a send whose answer timed out, so the row has no wamid
    message = _outbound(inbox, "wamid.X")
    message.wamid = None
    message.status = "sending"
    message.save()

    # when
    post_webhook(
        status_payload("wamid.FROM-META", "sent", 1_750_000_100, biz_opaque_callback_data=message.callback_data)
    )

    # then
    message.refresh_from_db()
    assert (message.wamid, message.status) == ("wamid.FROM-META", "sent")


@pytest.mark.django_db
def test_it_shows_a_reaction_on_its_message_and_removes_it(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.TARGET", "Posso remarcar?"))

    # when
    reaction = text_payload("wamid.REACT1")
    reaction["entry"][0]["changes"][0]["value"]["messages"][0] |= {
        "type": "reaction",
        "reaction": {"message_id": "wamid.TARGET", "emoji": "👍"},
    }
    post_webhook(reaction)

    # then
    target = Message.objects.get(wamid="wamid.TARGET")
    assert target.reactions == {"customer": "👍"}
    assert Message.objects.get(wamid="wamid.REACT1").type == "reaction"

    # when: the customer removes it (emoji key omitted)
    removal = text_payload("wamid.REACT2")
    removal["entry"][0]["changes"][0]["value"]["messages"][0] |= {
        "type": "reaction",
        "reaction": {"message_id": "wamid.TARGET"},
    }
    post_webhook(removal)

    # then
    target.refresh_from_db()
    assert target.reactions == {}


@pytest.mark.django_db
def test_it_applies_an_edit_and_keeps_the_old_text_in_history(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.ORIG", "Quero agendar na terça", timestamp=1_750_000_000))

    # when
    edit = text_payload("wamid.EDIT", timestamp=1_750_000_060)
    edit["entry"][0]["changes"][0]["value"]["messages"][0] = {
        "from": "5511987654321",
        "id": "wamid.EDIT",
        "timestamp": "1750000060",
        "type": "edit",
        "edit": {"original_message_id": "wamid.ORIG", "message": {"type": "text", "text": {"body": "Quero na quarta"}}},
    }
    post_webhook(edit)

    # then
    original = Message.objects.get(wamid="wamid.ORIG")
    assert original.text == "Quero na quarta"
    assert original.edit_history[0]["text"] == "Quero agendar na terça"
    assert original.edited == datetime.fromtimestamp(1_750_000_060, tz=UTC)
    assert Message.objects.filter(wamid="wamid.EDIT", type="edit").exists()


@pytest.mark.django_db
def test_it_marks_a_revoked_message(inbox, post_webhook) -> None:
    post_webhook(text_payload("wamid.OOPS", "mensagem errada"))
    revoke = text_payload("wamid.REVOKE")
    revoke["entry"][0]["changes"][0]["value"]["messages"][0] |= {
        "type": "revoke",
        "revoke": {"original_message_id": "wamid.OOPS"},
    }

    post_webhook(revoke)

    assert Message.objects.get(wamid="wamid.OOPS").revoked is not None


@pytest.mark.django_db
def test_it_does_not_let_a_reaction_touch_another_customers_message(inbox, post_webhook) -> None:
    # given: a message in someone else's conversation
    post_webhook(text_payload("wamid.ALICE", "segredo", wa_id="5511900001111"))

    # when
    reaction = text_payload("wamid.BOB-REACT", wa_id="5511900002222")
    reaction["entry"][0]["changes"][0]["value"]["messages"][0] |= {
        "type": "reaction",
        "reaction": {"message_id": "wamid.ALICE", "emoji": "😡"},
    }
    post_webhook(reaction)

    # then
    assert Message.objects.get(wamid="wamid.ALICE").reactions == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'"just a string"',
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": "nope"}',
        b'{"object": "whatsapp_business_account", "entry": [1, null, {"changes": {"a": 1}}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [null, {"field": "messages"}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": '
        b'{"metadata": {"phone_number_id": "TEST_PNID"}, "messages": "x", "statuses": [1, {"id": null}]}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": '
        b'{"metadata": {"phone_number_id": "TEST_PNID"}, "messages": [{"id": "wamid.NOFROM", "type": "text"}]}}]}]}',
    ],
)
def test_it_keeps_malformed_bodies_and_never_answers_500(inbox, post_webhook, body) -> None:
    # when
    response = post_webhook(body)

    # then
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert bytes(event.body) == body
    assert event.state == "flagged"
    assert event.notes
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_it_survives_wrong_types_inside_a_message(inbox, post_webhook) -> None:
    # given: fields of the wrong type everywhere
    body = text_payload("wamid.WEIRD")
    item = body["entry"][0]["changes"][0]["value"]["messages"][0]
    item |= {"timestamp": "yesterday", "text": "not an object", "context": ["x"], "referral": 5, "errors": "e"}
    body["entry"][0]["changes"][0]["value"]["contacts"] = [{"profile": "x", "wa_id": 5511987654321}]

    # when
    response = post_webhook(body)

    # then
    assert response.status_code == 200
    message = Message.objects.get(wamid="wamid.WEIRD")
    assert message.content == {"value": "not an object"}
    assert WebhookEvent.objects.get().state == "done"


@pytest.mark.django_db
def test_it_gives_an_id_less_message_a_stable_id_so_a_replay_still_dedupes(inbox, post_webhook) -> None:
    body = text_payload("x")
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]

    post_webhook(body)
    post_webhook(body)

    message = Message.objects.get()
    assert message.wamid.startswith("noid:")


@pytest.mark.django_db
def test_it_accepts_a_three_megabyte_body(inbox, post_webhook) -> None:
    # given: a message, a batch of statuses, and a large field Meta may add one day: 3 MB in all
    body = text_payload("wamid.BIG")
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"] = [
        {"id": f"wamid.S{i:05d}", "status": "delivered", "timestamp": "1750000000", "recipient_id": "5511987654321"}
        for i in range(1000)
    ]
    value["future_field"] = ""
    size = len(json.dumps(body).encode())
    value["future_field"] = "x" * (3 * 1024 * 1024 - size)
    raw = json.dumps(body).encode()
    assert len(raw) == 3 * 1024 * 1024

    # when
    response = post_webhook(raw)

    # then
    assert response.status_code == 200
    assert Message.objects.filter(wamid="wamid.BIG").count() == 1
    assert WebhookEvent.objects.get().state == "done"


@pytest.mark.django_db
def test_it_refuses_a_body_over_three_megabytes_with_413(inbox, post_webhook) -> None:
    raw = b'{"object": "whatsapp_business_account", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'

    response = post_webhook(raw)

    assert response.status_code == 413
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_it_flags_an_unknown_phone_number_and_applies_it_once_the_inbox_exists(inbox, post_webhook, english) -> None:
    # given: a webhook for a number we have not configured (yet)
    response = post_webhook(text_payload("wamid.LATER", phone_number_id="UNKNOWN_PNID"))
    event = WebhookEvent.objects.get()
    assert response.status_code == 200
    assert event.state == "flagged"
    assert "unknown phone_number_id UNKNOWN_PNID" in event.notes
    assert Message.objects.count() == 0

    # when: an admin adds the inbox and replays the event
    Inbox.objects.create(name="Filial", phone_number_id="UNKNOWN_PNID", app_secret=TEST_SECRET)
    processing.process_event(event.pk, force=True)

    # then
    event.refresh_from_db()
    assert event.state == "done"
    assert Message.objects.get().wamid == "wamid.LATER"


@pytest.mark.django_db
def test_it_keeps_the_event_stored_and_answers_200_when_the_broker_is_down(inbox, post_webhook) -> None:
    # given: a real (non-eager) Celery pointed at a broker port where nothing listens
    with broker_down():
        started = timezone.now()
        # when
        response = post_webhook(text_payload("wamid.BROKERDOWN"))
        elapsed = timezone.now() - started

        # and the dispatcher runs while the broker is still down
        assert tasks.dispatch_webhook_events() == 0

    # then: answered at once, stored, not yet processed
    assert response.status_code == 200
    assert elapsed < timedelta(seconds=10)
    event = WebhookEvent.objects.get()
    assert event.state == "pending"
    assert Message.objects.count() == 0

    # when: the broker is back and the dispatcher runs
    processed = tasks.dispatch_webhook_events()

    # then
    assert processed == 1
    event.refresh_from_db()
    assert event.state == "done"
    assert Message.objects.get().wamid == "wamid.BROKERDOWN"


@pytest.mark.django_db
def test_it_stores_hostile_text_without_failing(inbox, post_webhook) -> None:
    # given: NUL bytes, a lone surrogate, markup and right-to-left overrides, all valid JSON
    hostile = "<script>alert(1)</script> \u202e\u0000 {{ 7*7 }} \ud800 fim"
    body = json.dumps(text_payload("wamid.HOSTILE", hostile, name="<b>\u0000Robert'); DROP TABLE--")).encode()

    # when
    response = post_webhook(body)

    # then
    assert response.status_code == 200
    assert WebhookEvent.objects.get().state == "done"
    message = Message.objects.get(wamid="wamid.HOSTILE")
    assert message.text == "<script>alert(1)</script> \u202e\ufffd {{ 7*7 }} \ufffd fim"
    assert message.raw["text"]["body"] == message.text
    assert message.conversation.customer.name == "<b>\ufffdRobert'); DROP TABLE--"


@pytest.mark.django_db
def test_it_flags_a_body_nested_too_deep_to_parse(inbox, post_webhook) -> None:
    response = post_webhook(b"[" * 200_000 + b"]" * 200_000)

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state == "flagged"
    assert "RecursionError" in event.notes
