"""The Graph API stand-in: the real sending code talks to it over HTTP, it answers like Meta,
and reports sent, delivered and read back through the real signed webhook."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest

from conversations import outbound
from conversations.models import Conversation, Inbox, Message, WebhookEvent
from conversations.whatsapp.graph import ALERT, NEEDS_TEMPLATE, GraphClient, GraphError
from demo import catalog
from demo.network import network
from handoffs import services as handoffs
from tests.demo.conftest import PNG, PNID, TOKEN, WA_ID, WABA, Phone, settled

pytestmark = pytest.mark.django_db(transaction=True)


def _conversation(phone: Phone) -> Conversation:
    """The customer says hello (the offline bot answers it: a greeting and its menu)."""
    assert phone.send("text", text="Oi, bom dia").status_code == 200
    return Conversation.objects.get(customer__wa_id=WA_ID)


def _customer_message(conversation: Conversation) -> Message:
    return Message.objects.filter(conversation=conversation, direction=Message.Direction.IN).latest("id")


def _ticks(chat: str, message: Message) -> str:
    """The ticks the phone shows on one of the customer's own bubbles (delivered or read)."""
    bubble = chat[chat.index(f'id="phone-message-{message.pk}"') :]
    found = re.search(r"ticks--(\w+)", bubble)
    assert found is not None
    return found.group(1)


def _statuses_for(message: Message) -> list[tuple[str, str]]:
    """(status, callback data) of every status webhook about this message, in arrival order."""
    found = []
    for event in WebhookEvent.objects.order_by("id"):
        assert event.signature_valid is True
        value = json.loads(bytes(event.body))["entry"][0]["changes"][0]["value"]
        for item in value.get("statuses", []):
            if item["id"] == message.wamid:
                found.append((item["status"], item.get("biz_opaque_callback_data", "")))
    return found


def _status(message: Message) -> str:
    message.refresh_from_db()
    return message.status


def test_it_takes_an_attendant_send_to_the_phone_and_reports_sent_delivered_read(phone: Phone) -> None:
    # given
    conversation = _conversation(phone)

    # when: the real sending code (send task inline, as in the embedded mode)
    message = outbound.send_text(conversation, "Bom dia, Maria! Como posso ajudar?")

    # then: the stand-in accepted it with a Meta-shaped wamid and keeps what was sent
    message.refresh_from_db()
    assert message.wamid and message.wamid.startswith("wamid.")
    kept = network.get_sent(message.wamid)
    assert kept is not None
    assert kept.body == message.payload
    # sent, then delivered, arrive through the webhook; not read while the phone has not shown it
    settled()
    assert _status(message) == Message.Status.DELIVERED
    assert message.read_at is None
    # when: the phone shows the chat
    chat = phone.chat()
    assert "Bom dia, Maria! Como posso ajudar?" in chat.text
    # then: read, through the same signed webhook, in order, each echoing our callback data
    settled()
    assert _status(message) == Message.Status.READ
    assert message.sent_at and message.delivered_at and message.read_at
    callback = message.callback_data
    assert _statuses_for(message) == [("sent", callback), ("delivered", callback), ("read", callback)]
    # showing it again reports nothing more
    reported = WebhookEvent.objects.count()
    phone.chat()
    settled()
    assert WebhookEvent.objects.count() == reported
    assert not WebhookEvent.objects.exclude(state=WebhookEvent.State.DONE).exists()


def test_it_uploads_an_attendant_photo_and_the_phone_shows_it(phone: Phone) -> None:
    # given
    conversation = _conversation(phone)

    # when: a media send (outside any transaction, as send_media requires)
    message = outbound.send_media(
        conversation,
        media_type="image",
        file=io.BytesIO(PNG),
        filename="mapa.png",
        mime_type="image/png",
        caption="Mapa",
    )

    # then: uploaded to the stand-in, sent by its media id, shown on the phone
    message.refresh_from_db()
    media_id = message.payload["image"]["id"]
    assert network.get_media(media_id).content == PNG
    settled()
    assert _status(message) == Message.Status.DELIVERED
    chat = phone.chat().text
    assert f"/demo/phone/media/{message.pk}/" in chat
    assert "Mapa" in chat
    assert phone.http.get(f"/demo/phone/media/{message.pk}/").content == PNG


def test_it_reports_only_sent_for_a_reaction(phone: Phone) -> None:
    # given
    conversation = _conversation(phone)
    customer_message = _customer_message(conversation)

    # when
    reaction = outbound.send_reaction(customer_message, "👍")

    # then: like Meta, a reaction gets "sent" and nothing after it; it shows on the message
    settled()
    assert _status(reaction) == Message.Status.SENT
    phone.chat()
    settled()
    assert [s for s, _ in _statuses_for(reaction)] == ["sent"]
    assert "👍" in phone.chat().text


def test_it_shows_the_business_read_receipt_and_typing_on_the_phone(phone: Phone) -> None:
    # given: the conversation waits for a person (the bot, which marks what it answers read,
    # stays quiet), and the customer writes again
    conversation = _conversation(phone)
    handoffs.transfer_to_queue(conversation, None, reason="Cliente quer falar com a recepção")
    assert phone.send("text", text="Alguém aí?").status_code == 200
    customer_message = _customer_message(conversation)
    assert customer_message.text == "Alguém aí?"
    chat = phone.chat().text
    assert _ticks(chat, customer_message) == "delivered"
    assert "bubble--typing" not in chat

    # when: the console opens the conversation (read receipt with the typing indicator)
    outbound.mark_read(customer_message, typing=True)

    # then
    chat = phone.chat().text
    assert _ticks(chat, customer_message) == "read"
    assert "bubble--typing" in chat


def test_it_answers_a_bad_token_like_meta(demo_site: str, demo_inbox: Inbox) -> None:
    # when
    response = httpx.post(
        f"{demo_site}/demo/graph/v24.0/{PNID}/messages",
        json={"messaging_product": "whatsapp", "to": WA_ID, "type": "text", "text": {"body": "oi"}},
        headers={"Authorization": "Bearer wrong"},
    )

    # then: Meta's error object, which our client classifies as an expired token
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 190
    demo_inbox.access_token = "wrong"
    with pytest.raises(GraphError) as raised:
        GraphClient(demo_inbox).send_message({"messaging_product": "whatsapp", "to": WA_ID, "type": "text"})
    assert (raised.value.code, raised.value.kind) == (190, ALERT)
    assert network.sent == {}


def test_it_refuses_an_invalid_send_with_code_100(demo_site: str, demo_inbox: Inbox) -> None:
    # when: an image by an id nobody uploaded
    with pytest.raises(GraphError) as raised:
        GraphClient(demo_inbox).send_message(
            {"messaging_product": "whatsapp", "to": WA_ID, "type": "image", "image": {"id": "123"}}
        )

    # then
    assert (raised.value.http_status, raised.value.code) == (400, 100)
    assert network.sent == {}


def test_it_refuses_free_text_outside_the_24_hour_window_like_meta(demo_site: str, demo_inbox: Inbox) -> None:
    # given: a customer who never wrote (our own check would refuse first; the stand-in too)
    client = GraphClient(demo_inbox)

    # when
    with pytest.raises(GraphError) as raised:
        client.send_message(
            {"messaging_product": "whatsapp", "to": "5511900001111", "type": "text", "text": {"body": "oi"}}
        )

    # then: 131047, which the client reads as "a template is needed"; a template goes through
    assert (raised.value.code, raised.value.kind) == (131047, NEEDS_TEMPLATE)
    template = {"name": "retomar_atendimento", "language": {"code": "pt_BR"}}
    wamid = client.send_message(
        {"messaging_product": "whatsapp", "to": "5511900001111", "type": "template", "template": template}
    )
    assert wamid.startswith("wamid.")


def test_it_lists_the_demo_templates_page_by_page(demo_site: str, demo_inbox: Inbox) -> None:
    # when
    templates = GraphClient(demo_inbox).list_templates(WABA, page_size=2)

    # then
    assert [t["name"] for t in templates] == [t["name"] for t in catalog.TEMPLATES]


def test_it_serves_media_only_with_the_token_and_a_fresh_url(demo_site: str, demo_inbox: Inbox) -> None:
    # given
    client = GraphClient(demo_inbox)
    media_id = client.upload_media(io.BytesIO(PNG), mime_type="image/png", filename="a.png")

    # when
    info = client.media_info(media_id)
    download = client.download(info.url, max_bytes=10_000)

    # then
    assert (info.mime_type, info.file_size, info.id) == ("image/png", len(PNG), media_id)
    assert download.file.read() == PNG
    assert httpx.get(info.url).status_code == 401
    assert httpx.get(info.url.split("?")[0], headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
