from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from conversations import delivery, outbound, processing, tasks
from conversations.models import Alert, Conversation, Customer, Inbox, Message, OrphanStatus, WebhookEvent
from conversations.outbound import InvalidMessage, SendRefused
from tests.conftest import status_payload
from tests.fake_graph import FakeGraph, Reply, graph_error

pytest_plugins = ["tests.conftest_graph"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]


@pytest.fixture
def conversation(inbox: Inbox) -> Conversation:
    customer = Customer.objects.create(wa_id="5511987654321", phone="+5511987654321", name="Maria")
    # The customer wrote an hour ago: the 24-hour window is open.
    return Conversation.objects.create(inbox=inbox, customer=customer, last_inbound=timezone.now() - timedelta(hours=1))


@pytest.fixture
def inbound(conversation: Conversation) -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="text",
        text="Oi",
        wamid="wamid.IN1",
    )


def pending_row(conversation: Conversation, text: str = "Oi") -> Message:
    """An outbound row as send_text stores it, without queueing its task."""
    message = Message(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.ATTENDANT,
        type="text",
        text=text,
        status=Message.Status.PENDING,
    )
    message.payload = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5511987654321",
        "type": "text",
        "text": {"body": text, "preview_url": False},
        "biz_opaque_callback_data": message.callback_data,
    }
    message.save()
    return message


def test_it_sends_a_text_and_stores_the_wamid(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # when
    message = outbound.send_text(conversation, "Olá, Maria!")

    # then
    message.refresh_from_db()
    [accepted] = fake_graph.accepted
    assert message.status == Message.Status.SENT
    assert message.wamid == accepted["wamid"]
    assert message.sent_at is not None
    assert message.send_attempts == 1
    assert message.payload == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5511987654321",
        "type": "text",
        "text": {"body": "Olá, Maria!", "preview_url": False},
        "biz_opaque_callback_data": f"atende:{message.uuid}",
    }
    assert fake_graph.sends()[0].json == message.payload
    assert message.direction == Message.Direction.OUT
    assert message.sender_kind == Message.SenderKind.ATTENDANT
    conversation.refresh_from_db()
    assert conversation.last_message == message.wa_timestamp


def test_it_sends_to_the_business_scoped_id_when_there_is_no_phone(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # given
    customer = Customer.objects.create(user_id="US.123456")
    conversation = Conversation.objects.create(inbox=inbox, customer=customer, last_inbound=timezone.now())

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    body = fake_graph.sends()[0].json
    assert body["recipient"] == "US.123456"
    assert "to" not in body
    assert Message.objects.get(pk=message.pk).status == Message.Status.SENT


def test_it_retries_429_and_500_then_sends_exactly_once(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.script("messages", graph_error(130429, status=429), graph_error(131000, status=500))

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    message.refresh_from_db()
    assert len(fake_graph.sends()) == 3
    assert len(fake_graph.accepted) == 1
    assert message.status == Message.Status.SENT
    assert message.wamid == fake_graph.accepted[0]["wamid"]
    assert message.send_attempts == 3
    assert (message.error_code, message.error_title, message.error_details) == (None, "", "")


def test_it_backs_off_4_to_the_n_seconds_on_the_pair_rate_limit(
    conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given
    message = pending_row(conversation)
    fake_graph.script("messages", graph_error(131056))

    # when
    outcome = delivery.deliver(message.pk)

    # then
    message.refresh_from_db()
    assert outcome.result == "retry"
    assert outcome.retry_in == 4.0
    assert message.status == Message.Status.PENDING
    assert message.error_code == 131056
    assert delivery.retry_delay(3, 131056) == 64.0


def test_it_fails_with_metas_reason_after_the_last_attempt(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given
    settings.WHATSAPP_SEND_MAX_ATTEMPTS = 2
    fake_graph.script(
        "messages",
        graph_error(131000, status=500, message="Something went wrong", details="Try later"),
        graph_error(131000, status=500, message="Something went wrong", details="Try later"),
    )

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    message.refresh_from_db()
    assert len(fake_graph.sends()) == 2
    assert message.status == Message.Status.FAILED
    assert message.error_code == 131000
    assert message.error_title == "Something went wrong"
    assert message.error_details == "Try later"


def test_it_retries_when_the_connection_is_refused(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: Meta unreachable (nothing listens on the port)
    message = pending_row(conversation)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.WHATSAPP_GRAPH_URL = f"http://127.0.0.1:{closed_port}/v23.0"

    # when
    first = delivery.deliver(message.pk)
    settings.WHATSAPP_GRAPH_URL = fake_graph.url
    second = delivery.deliver(message.pk)

    # then
    message.refresh_from_db()
    assert first.result == "retry"
    assert second.result == "sent"
    assert message.status == Message.Status.SENT
    assert message.send_attempts == 2
    assert len(fake_graph.accepted) == 1


def test_it_waits_for_the_status_webhook_after_a_lost_answer(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph, post_webhook: Callable[..., Any]
) -> None:
    # given: Meta accepts the message but the answer arrives after our timeout
    settings.WHATSAPP_HTTP_TIMEOUT = 0.2
    fake_graph.script("messages", Reply(accept=True, delay=0.6))
    message = outbound.send_text(conversation, "Oi")
    message.refresh_from_db()
    assert message.status == Message.Status.SENDING
    assert message.wamid is None
    wamid = fake_graph.accepted[0]["wamid"]

    # when: the status webhook echoes our callback data
    response = post_webhook(
        status_payload(wamid, "sent", 1_750_000_100, biz_opaque_callback_data=message.callback_data)
    )

    # then
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert message.wamid == wamid
    # The sweep after the confirmation window and a late duplicate task leave it alone.
    later = timezone.now() + timedelta(seconds=settings.WHATSAPP_SEND_CONFIRM_SECONDS + 1)
    assert delivery.reconcile_unconfirmed(later) == []
    tasks.send_message.apply(args=[message.pk])
    assert tasks.sweep_outbound_messages() == 0
    assert len(fake_graph.sends()) == 1
    message.refresh_from_db()
    assert message.status == Message.Status.SENT


def test_it_marks_a_lost_answer_unconfirmed_and_never_sends_it_again(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: the first request's answer is lost and no status webhook ever comes
    settings.WHATSAPP_HTTP_TIMEOUT = 0.2
    fake_graph.script("messages", graph_error(131000, status=500, delay=0.6))
    message = outbound.send_text(conversation, "Oi")
    assert delivery.reconcile_unconfirmed(timezone.now()) == []

    # when: the sweep runs past the confirmation window, twice, and a late duplicate task comes
    later = timezone.now() + timedelta(seconds=settings.WHATSAPP_SEND_CONFIRM_SECONDS + 1)
    marked = delivery.reconcile_unconfirmed(later)
    again = delivery.reconcile_unconfirmed(later + timedelta(hours=1))
    tasks.send_message.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert marked == [message.pk]
    assert again == []
    assert len(fake_graph.sends()) == 1
    assert message.status == Message.Status.UNCONFIRMED
    assert message.wamid is None
    assert message.send_attempts == 1


def test_it_never_sends_again_while_the_status_webhook_waits_in_the_backlog(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph, post_webhook: Callable[..., Any]
) -> None:
    # given: Meta accepts the message but its answer is lost (read timeout)...
    settings.WHATSAPP_HTTP_TIMEOUT = 0.2
    fake_graph.script("messages", Reply(accept=True, delay=0.6))
    message = outbound.send_text(conversation, "Oi")
    [accepted] = fake_graph.accepted
    # ...and the status webhook that would link it is stored but sits unprocessed in the backlog
    # (production mode: the request only stores it, the dispatcher applies it later).
    settings.CELERY_TASK_ALWAYS_EAGER = False
    body = status_payload(accepted["wamid"], "delivered", 1_750_000_100, biz_opaque_callback_data=message.callback_data)
    assert post_webhook(body).status_code == 200
    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.PENDING

    # when: the beat sweep runs past the confirmation window, twice
    settings.WHATSAPP_SEND_CONFIRM_SECONDS = 0
    tasks.sweep_outbound_messages()
    tasks.sweep_outbound_messages()

    # then: nothing more went to Meta; the row waits for a person, not confirmed
    message.refresh_from_db()
    assert len(fake_graph.sends()) == 1
    assert message.status == Message.Status.UNCONFIRMED
    assert message.wamid is None

    # when: the status webhook is finally processed
    processing.process_event(event.pk)

    # then: it links the row to its wamid and moves it forward
    message.refresh_from_db()
    assert message.wamid == accepted["wamid"]
    assert message.status == Message.Status.DELIVERED
    assert message.delivered_at is not None
    assert len(fake_graph.sends()) == 1


def _in_thread(work: Callable[[], Any], *, then: threading.Event | None = None) -> threading.Thread:
    """Run ``work`` in a thread of its own (its own database connection), like a second
    worker; ``then`` is set once it has finished."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()
            if then is not None:
                then.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def pending_image_row(conversation: Conversation) -> Message:
    """An outbound image as send_media stores it (file kept, to be uploaded), without its task."""
    message = pending_row(conversation)
    message.type = "image"
    message.text = ""
    message.media_mime = "image/png"
    message.media.save(f"out-{message.uuid}.png", ContentFile(PNG), save=False)
    message.payload = {**message.payload, "type": "image", "image": {}}
    del message.payload["text"]
    message.save()
    return message


PNG = b"\x89PNG\r\n\x1a\n fake image"


def test_it_sends_once_when_a_slow_upload_outlives_the_sweep_and_a_send_again(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: worker 1 claims an image and its upload to Meta outlives the confirmation window.
    # Its upload completes only when the second attempt's upload has reached Meta, and the
    # second one only when worker 1 is done: worker 1 finishes while attempt 2 owns the row.
    settings.WHATSAPP_HTTP_TIMEOUT = 5.0
    upload_1_started, attempt_2_uploading, worker_1_done = threading.Event(), threading.Event(), threading.Event()
    fake_graph.script(
        "media",
        Reply(json={"id": "UPLOADED.SLOW1"}, arrived=upload_1_started, hold=attempt_2_uploading),
        Reply(json={"id": "UPLOADED.SLOW2"}, arrived=attempt_2_uploading, hold=worker_1_done),
    )
    message = pending_image_row(conversation)
    outcomes: list[delivery.Outcome] = []
    worker = _in_thread(lambda: outcomes.append(delivery.deliver(message.pk)), then=worker_1_done)
    assert upload_1_started.wait(5)

    # when: the sweep marks it unconfirmed and a person sends it again (run here, in the
    # embedded mode: attempt 2 uploads and sends)
    settings.WHATSAPP_SEND_CONFIRM_SECONDS = 0
    tasks.sweep_outbound_messages()
    message.refresh_from_db()
    assert message.status == Message.Status.UNCONFIRMED
    outbound.send_again(message)
    worker.join()

    # then: Meta got one send, the second attempt's
    message.refresh_from_db()
    assert [o.result for o in outcomes] == ["skipped"]
    assert len(fake_graph.calls("media")) == 2
    [send] = fake_graph.sends()
    assert send.json["image"] == {"id": "UPLOADED.SLOW2"}
    assert message.status == Message.Status.SENT
    assert message.wamid == fake_graph.accepted[0]["wamid"]
    assert message.media_id == "UPLOADED.SLOW2"
    assert message.send_attempts == 2


def test_it_sends_a_slow_upload_once_when_the_sweep_marked_it_meanwhile(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: an upload that outlives the confirmation window
    settings.WHATSAPP_HTTP_TIMEOUT = 5.0
    upload_started, upload_done = threading.Event(), threading.Event()
    fake_graph.script("media", Reply(json={"id": "UPLOADED.SLOW"}, arrived=upload_started, hold=upload_done))
    message = pending_image_row(conversation)
    outcomes: list[delivery.Outcome] = []
    worker = _in_thread(lambda: outcomes.append(delivery.deliver(message.pk)))
    assert upload_started.wait(5)

    # when: the sweep marks it unconfirmed, then the upload finishes and nobody sent it again
    settings.WHATSAPP_SEND_CONFIRM_SECONDS = 0
    assert delivery.reconcile_unconfirmed() == [message.pk]
    upload_done.set()
    worker.join()
    tasks.sweep_outbound_messages()

    # then: nothing had gone to Meta yet, so the worker's own attempt sends it, once
    message.refresh_from_db()
    assert [o.result for o in outcomes] == ["sent"]
    assert len(fake_graph.sends()) == 1
    assert message.status == Message.Status.SENT
    assert message.send_attempts == 1


def test_it_links_a_late_send_answer_to_a_row_the_sweep_marked_unconfirmed(
    settings: Any, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given: Meta's answer is slow, and the sweep gives up waiting while it is on its way
    settings.WHATSAPP_HTTP_TIMEOUT = 5.0
    send_arrived, answer = threading.Event(), threading.Event()
    fake_graph.script("messages", Reply(accept=True, arrived=send_arrived, hold=answer))
    message = pending_row(conversation)
    outcomes: list[delivery.Outcome] = []
    worker = _in_thread(lambda: outcomes.append(delivery.deliver(message.pk)))
    assert send_arrived.wait(5)
    settings.WHATSAPP_SEND_CONFIRM_SECONDS = 0
    assert delivery.reconcile_unconfirmed() == [message.pk]

    # when: the answer arrives
    answer.set()
    worker.join()

    # then: the row learns its wamid and is sent, once
    message.refresh_from_db()
    assert [o.result for o in outcomes] == ["sent"]
    assert message.status == Message.Status.SENT
    assert message.wamid == fake_graph.accepted[0]["wamid"]
    assert len(fake_graph.sends()) == 1


def test_it_applies_a_status_that_raced_ahead_of_the_send_answer(
    conversation: Conversation, fake_graph: FakeGraph, post_webhook: Callable[..., Any]
) -> None:
    # given: Meta's "delivered" webhook for wamid.RACE arrives before the send's answer
    post_webhook(status_payload("wamid.RACE", "delivered", 1_750_000_200))
    assert OrphanStatus.objects.filter(wamid="wamid.RACE").count() == 1
    fake_graph.script("messages", Reply(accept=True, wamid="wamid.RACE"))

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    message.refresh_from_db()
    assert message.wamid == "wamid.RACE"
    assert message.status == Message.Status.DELIVERED
    assert message.delivered_at is not None
    assert OrphanStatus.objects.count() == 0


def test_it_refuses_outside_the_window_without_storing_or_sending(
    conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given
    conversation.last_inbound = timezone.now() - timedelta(hours=25)
    conversation.save()

    # when
    with pytest.raises(SendRefused) as caught:
        outbound.send_text(conversation, "Oi")

    # then
    assert caught.value.reason == "window_closed"
    assert "template" in str(caught.value)
    assert Message.objects.count() == 0
    assert fake_graph.requests == []


def test_it_refuses_when_the_customer_never_wrote(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # given
    customer = Customer.objects.create(wa_id="5511911112222", phone="+5511911112222")
    conversation = Conversation.objects.create(inbox=inbox, customer=customer)

    # when
    with pytest.raises(SendRefused):
        outbound.send_interactive_buttons(conversation, "Escolha", [("a", "A")])

    # then
    assert Message.objects.count() == 0
    assert fake_graph.requests == []


def test_it_sends_a_template_outside_the_window(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given
    conversation.last_inbound = timezone.now() - timedelta(days=3)
    conversation.save()
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}]

    # when
    message = outbound.send_template(conversation, "follow_up", "pt_BR", components)

    # then
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert fake_graph.sends()[0].json["template"] == {
        "name": "follow_up",
        "language": {"code": "pt_BR"},
        "components": components,
    }


def test_it_fails_with_a_template_hint_on_131047(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given: our clock says the window is open, Meta's says it closed
    fake_graph.script("messages", graph_error(131047, details="Message failed to send because more than 24 hours"))

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    message.refresh_from_db()
    assert len(fake_graph.sends()) == 1
    assert message.status == Message.Status.FAILED
    assert message.error_code == 131047
    assert message.error_title == str(delivery.TEMPLATE_NEEDED)
    assert message.error_details == "Message failed to send because more than 24 hours"
    assert message.wamid is None


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [(190, 401, Alert.Kind.TOKEN), (368, 400, Alert.Kind.ACCOUNT), (131031, 400, Alert.Kind.ACCOUNT)],
)
def test_it_alerts_and_pauses_the_inbox(
    conversation: Conversation, fake_graph: FakeGraph, code: int, status: int, kind: str
) -> None:
    # given
    fake_graph.script("messages", graph_error(code, status=status, details="Fix the account"))

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error_code == code
    [alert] = Alert.objects.all()
    assert (alert.inbox_id, alert.kind, alert.code, alert.details) == (
        conversation.inbox_id,
        kind,
        code,
        "Fix the account",
    )
    inbox = Inbox.objects.get(pk=conversation.inbox_id)
    assert str(code) in inbox.sending_paused_reason

    # and later sends are refused before anything is stored or sent
    with pytest.raises(SendRefused) as caught:
        outbound.send_text(conversation, "Outra")
    assert caught.value.reason == "paused"
    assert Message.objects.count() == 1
    assert len(fake_graph.sends()) == 1


def test_it_fails_rows_already_queued_when_the_inbox_is_paused(
    conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # given
    message = pending_row(conversation)
    Inbox.objects.filter(pk=conversation.inbox_id).update(sending_paused_reason="token expired")

    # when
    outcome = delivery.deliver(message.pk)

    # then
    message.refresh_from_db()
    assert outcome.result == "failed"
    assert message.status == Message.Status.FAILED
    assert message.error_details == "token expired"
    assert fake_graph.requests == []


@pytest.mark.parametrize(
    ("code", "title", "alerts"),
    [
        (131026, "Message undeliverable", 0),
        (100, "Invalid parameter", 0),
        (132001, "Template name does not exist in the translation", 1),
    ],
)
def test_it_fails_for_good_with_metas_reason(
    conversation: Conversation, fake_graph: FakeGraph, code: int, title: str, alerts: int
) -> None:
    # given
    fake_graph.script("messages", graph_error(code, details="What Meta says"))

    # when
    message = outbound.send_text(conversation, "Oi")

    # then
    message.refresh_from_db()
    assert len(fake_graph.sends()) == 1
    assert message.status == Message.Status.FAILED
    assert message.failed_at is not None
    assert (message.error_code, message.error_title, message.error_details) == (code, title, "What Meta says")
    assert Alert.objects.count() == alerts
    assert Inbox.objects.get(pk=conversation.inbox_id).sending_paused_reason == ""


def test_it_ignores_a_duplicate_task(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given
    message = outbound.send_text(conversation, "Oi")

    # when
    tasks.send_message.apply(args=[message.pk])
    delivery.deliver(message.pk)

    # then
    assert len(fake_graph.sends()) == 1


def test_it_sweeps_a_pending_message_whose_task_was_lost(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given: stored while the broker was down, two minutes ago
    message = pending_row(conversation)
    fresh = pending_row(conversation, "fresh")
    Message.objects.filter(pk=message.pk).update(updated=timezone.now() - timedelta(minutes=2))

    # when
    count = tasks.sweep_outbound_messages()

    # then
    message.refresh_from_db()
    fresh.refresh_from_db()
    assert count == 1
    assert message.status == Message.Status.SENT
    assert fresh.status == Message.Status.PENDING
    assert len(fake_graph.sends()) == 1


def test_it_sends_pending_messages_from_the_command(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given
    message = pending_row(conversation)

    # when
    call_command("send_pending", "--all")

    # then
    message.refresh_from_db()
    assert message.status == Message.Status.SENT


@pytest.mark.parametrize(
    ("send", "error"),
    [
        (lambda c: outbound.send_text(c, ""), "Type a message"),
        (lambda c: outbound.send_text(c, "   "), "Type a message"),
        (lambda c: outbound.send_text(c, "x" * 4097), "4096"),
        (lambda c: outbound.send_interactive_buttons(c, "Escolha", [("a", "A")] * 0), "1 to 3"),
        (lambda c: outbound.send_interactive_buttons(c, "Escolha", [(str(i), "B") for i in range(4)]), "1 to 3"),
        (lambda c: outbound.send_interactive_buttons(c, "Escolha", [("a", "x" * 21)]), "20"),
        (lambda c: outbound.send_interactive_buttons(c, "Escolha", [("a", "A"), ("a", "B")]), "different"),
        (lambda c: outbound.send_interactive_list(c, "Menu", "Ver", []), "1 to 10"),
        (
            lambda c: outbound.send_interactive_list(
                c, "Menu", "Ver", [{"rows": [{"id": str(i), "title": "t"} for i in range(11)]}]
            ),
            "10 rows",
        ),
        (lambda c: outbound.send_interactive_list(c, "Menu", "x" * 21, [{"rows": [{"id": "1", "title": "t"}]}]), "20"),
        (
            lambda c: outbound.send_media(c, media_type="image", link="https://example.com/a.jpg", caption="x" * 1025),
            "1024",
        ),
        (lambda c: outbound.send_media(c, media_type="image", link="http://example.com/a.jpg"), "https"),
        (
            lambda c: outbound.send_media(c, media_type="audio", link="https://example.com/a.ogg", caption="x"),
            "caption",
        ),
        (lambda c: outbound.send_media(c, media_type="hologram", link="https://example.com/a"), "Unsupported"),
        (
            lambda c: outbound.send_media(
                c, media_type="image", file=SimpleUploadedFile("a.html", b"<html>", content_type="text/html")
            ),
            "text/html",
        ),
        (
            lambda c: outbound.send_media(
                c, media_type="sticker", file=SimpleUploadedFile("a.webp", b"x" * 600_000, content_type="image/webp")
            ),
            "too large",
        ),
        (lambda c: outbound.send_template(c, "", "pt_BR"), "template"),
    ],
)
def test_it_rejects_invalid_messages_before_storing_anything(
    conversation: Conversation, fake_graph: FakeGraph, send: Callable[[Conversation], Message], error: str
) -> None:
    # when
    with pytest.raises(InvalidMessage) as caught:
        send(conversation)

    # then
    assert error in str(caught.value)
    assert Message.objects.count() == 0
    assert fake_graph.requests == []


def test_it_sends_reply_buttons(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # when
    message = outbound.send_interactive_buttons(
        conversation, "Como podemos ajudar?", [{"id": "sales", "title": "Vendas"}, ("support", "Suporte")]
    )

    # then
    assert fake_graph.sends()[0].json["interactive"] == {
        "type": "button",
        "body": {"text": "Como podemos ajudar?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "sales", "title": "Vendas"}},
                {"type": "reply", "reply": {"id": "support", "title": "Suporte"}},
            ]
        },
    }
    message.refresh_from_db()
    assert (message.type, message.sender_kind, message.status) == ("interactive", "bot", Message.Status.SENT)


def test_it_sends_a_list(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # when
    outbound.send_interactive_list(
        conversation,
        "Escolha um horário",
        "Horários",
        [{"title": "Manhã", "rows": [{"id": "9", "title": "09:00", "description": "Segunda"}]}],
    )

    # then
    assert fake_graph.sends()[0].json["interactive"] == {
        "type": "list",
        "body": {"text": "Escolha um horário"},
        "action": {
            "button": "Horários",
            "sections": [{"title": "Manhã", "rows": [{"id": "9", "title": "09:00", "description": "Segunda"}]}],
        },
    }


def test_it_uploads_a_file_and_sends_it_by_id(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # given
    upload = SimpleUploadedFile("Relatório final.pdf", b"%PDF-1.4 test", content_type="application/pdf")

    # when
    message = outbound.send_media(conversation, media_type="document", file=upload, caption="Segue o relatório")

    # then
    message.refresh_from_db()
    [upload_request] = fake_graph.calls("media")
    assert b"%PDF-1.4 test" in upload_request.body
    assert b'name="type"\r\n\r\napplication/pdf' in upload_request.body
    [send] = fake_graph.sends()
    assert send.json["document"] == {
        "id": message.media_id,
        "caption": "Segue o relatório",
        "filename": "Relatório final.pdf",
    }
    assert send.json == message.payload
    assert message.media_status == Message.MediaStatus.UPLOADED
    assert message.status == Message.Status.SENT
    assert message.media_filename == "Relatório final.pdf"
    assert message.media.name.endswith(".pdf")
    with message.media.open("rb") as fh:
        assert fh.read() == b"%PDF-1.4 test"


def test_it_sends_media_by_link_without_uploading(conversation: Conversation, fake_graph: FakeGraph) -> None:
    # when
    outbound.send_media(conversation, media_type="image", link="https://cdn.example.com/a.jpg", caption="Foto")

    # then
    assert fake_graph.calls("media") == []
    assert fake_graph.sends()[0].json["image"] == {"link": "https://cdn.example.com/a.jpg", "caption": "Foto"}


def test_it_reacts_and_records_the_reaction_on_the_target(
    inbound: Message, conversation: Conversation, fake_graph: FakeGraph
) -> None:
    # when
    reaction = outbound.send_reaction(inbound, "👍")

    # then
    assert fake_graph.sends()[0].json["reaction"] == {"message_id": "wamid.IN1", "emoji": "👍"}
    inbound.refresh_from_db()
    assert inbound.reactions == {"business": "👍"}
    assert Message.objects.get(pk=reaction.pk).status == Message.Status.SENT


def test_it_marks_a_message_read_with_typing(inbound: Message, fake_graph: FakeGraph) -> None:
    # when
    outbound.mark_read(inbound, typing=True)

    # then
    [request] = fake_graph.calls("messages")
    assert request.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
        "typing_indicator": {"type": "text"},
    }
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_send_inside_the_callers_transaction_takes_no_savepoint_and_reads_the_inbox_with_the_lock(
    conversation: Conversation,
) -> None:
    # given: a caller's transaction (a bot's turn)
    from django.db import transaction
    from django.test.utils import CaptureQueriesContext

    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        message = outbound.send_text(conversation, "Olá", sender_kind=Message.SenderKind.BOT)

    # then: the conversation (with customer and inbox) locked, the row, the conversation's time
    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    assert "SAVEPOINT" not in statements
    assert statements.count("SELECT") == 1
    assert Message.objects.get(pk=message.pk).text == "Olá"


@pytest.mark.django_db(transaction=True)
def test_a_refused_send_leaves_the_callers_transaction_usable(conversation: Conversation) -> None:
    # given: the inbox was paused a moment ago by another worker
    from django.db import transaction

    Inbox.objects.filter(pk=conversation.inbox_id).update(sending_paused_reason="token expired")

    # when: the caller's transaction goes on after the refusal
    with transaction.atomic():
        with pytest.raises(SendRefused) as caught:
            outbound.send_text(conversation, "Olá", sender_kind=Message.SenderKind.BOT)
        Customer.objects.filter(pk=conversation.customer_id).update(name="Maria S.")

    # then: refused for the fresh reason, nothing stored, the caller's write committed
    assert caught.value.reason == "paused"
    assert not Message.objects.filter(conversation=conversation).exists()
    assert Customer.objects.get(pk=conversation.customer_id).name == "Maria S."
