"""What the customer's phone sends reaches the business through the real intake: a webhook POST
signed with the inbox's app secret, in Meta's shapes, stored and applied like Meta's. (The
offline bot answers each message too: the business's replies are the outbound rows.)"""

from __future__ import annotations

import json

import pytest

from conversations import outbound
from conversations.models import Conversation, Message, WebhookEvent
from demo.network import network
from tests.demo.conftest import NAME, PNG, WA_ID, Phone, settled

pytestmark = pytest.mark.django_db(transaction=True)


def _last_event_item() -> dict:
    """The change of the last webhook carrying a customer's message (status webhooks about the
    bot's replies arrive after it)."""
    for event in WebhookEvent.objects.order_by("-id"):
        value = json.loads(bytes(event.body))["entry"][0]["changes"][0]["value"]
        if "messages" in value:
            assert event.signature_valid is True
            assert event.state == WebhookEvent.State.DONE
            return value
    raise AssertionError("no webhook with a message")


def _business_message(phone: Phone, send: object) -> Message:
    """The customer writes first (the window opens), then the business sends ``send``."""
    assert phone.send("text", text="Oi!").status_code == 200
    conversation = Conversation.objects.get(customer__wa_id=WA_ID)
    message = send(conversation)  # type: ignore[operator]
    settled()
    message.refresh_from_db()
    assert message.wamid
    return message


def test_it_sends_text_through_the_signed_webhook(phone: Phone) -> None:
    # when
    response = phone.send("text", text="Olá, queria marcar uma consulta")

    # then: one inbound message, from this customer, applied from Meta's shape
    assert response.status_code == 200
    message = Message.objects.get(direction=Message.Direction.IN)
    assert (message.direction, message.type, message.text) == (
        Message.Direction.IN,
        "text",
        "Olá, queria marcar uma consulta",
    )
    assert message.wamid.startswith("wamid.")
    assert (message.conversation.customer.wa_id, message.conversation.customer.name) == (WA_ID, NAME)
    value = _last_event_item()
    assert value["metadata"]["phone_number_id"] == message.conversation.inbox.phone_number_id
    assert value["contacts"] == [{"profile": {"name": NAME}, "wa_id": WA_ID}]
    assert value["messages"][0]["text"] == {"body": "Olá, queria marcar uma consulta"}
    # and the phone shows it
    assert "Olá, queria marcar uma consulta" in response.text


def test_it_sends_an_image_the_business_downloads_through_the_stand_in(phone: Phone) -> None:
    # when
    response = phone.send("image", files={"image": ("foto.png", PNG, "image/png")}, caption="Minha receita")

    # then: the intake stored the media id and the download task fetched the bytes from the
    # stand-in's media endpoints (look-up, then the file with the Bearer token)
    assert response.status_code == 200
    message = Message.objects.get(direction=Message.Direction.IN)
    assert (message.type, message.caption, message.media_mime) == ("image", "Minha receita", "image/png")
    assert message.media_status == Message.MediaStatus.DONE, message.media_error
    with message.media.open("rb") as fh:
        assert fh.read() == PNG
    assert network.get_media(message.media_id) is not None
    assert f"/demo/phone/media/{message.pk}/" in response.text
    # and after a restart (the stand-in forgets its files) the phone shows the stored copy
    network.reset()
    assert phone.http.get(f"/demo/phone/media/{message.pk}/").content == PNG


def test_it_sends_a_location(phone: Phone) -> None:
    # when
    response = phone.send(
        "location", latitude="-23.561414", longitude="-46.655881", place="MASP", address="Av. Paulista"
    )

    # then
    assert response.status_code == 200
    message = Message.objects.get(direction=Message.Direction.IN)
    assert message.type == "location"
    assert message.content == {
        "latitude": -23.561414,
        "longitude": -46.655881,
        "name": "MASP",
        "address": "Av. Paulista",
    }
    assert "MASP" in response.text


def test_it_taps_a_button_of_the_business_last_interactive_message(phone: Phone) -> None:
    # given: the business asked with two reply buttons
    question = _business_message(
        phone,
        lambda c: outbound.send_interactive_buttons(
            c, "Confirma quinta às 9h30?", [("ok", "Confirmar"), ("no", "Remarcar")]
        ),
    )
    chat = phone.chat().text
    assert "Confirma quinta às 9h30?" in chat
    assert "Confirmar" in chat and "Remarcar" in chat

    # when: the customer taps "Confirmar" on it
    response = phone.send("button_reply", reply_id="ok", title="Confirmar", context=question.wamid)

    # then: a button_reply answering that message
    assert response.status_code == 200
    reply = Message.objects.filter(direction=Message.Direction.IN).order_by("-id").first()
    assert reply is not None
    assert (reply.type, reply.text) == ("interactive", "Confirmar")
    assert reply.content == {"type": "button_reply", "button_reply": {"id": "ok", "title": "Confirmar"}}
    assert reply.context_wamid == question.wamid
    assert reply.reply_to == question


def test_it_offers_canned_yes_no_replies_to_a_plain_message(phone: Phone) -> None:
    # given: the business's last message has no buttons
    question = _business_message(phone, lambda c: outbound.send_text(c, "Posso confirmar seu horário?"))
    chat = phone.chat().text
    assert 'name="reply_id" value="sim"' in chat and 'name="reply_id" value="nao"' in chat

    # when
    response = phone.send("button_reply", reply_id="sim", title="Sim", context=question.wamid)

    # then
    assert response.status_code == 200
    reply = Message.objects.filter(direction=Message.Direction.IN).order_by("-id").first()
    assert reply is not None
    assert reply.content == {"type": "button_reply", "button_reply": {"id": "sim", "title": "Sim"}}
    assert reply.reply_to == question


def test_it_answers_a_template_quick_reply_as_a_button_message(phone: Phone) -> None:
    # given: a template with quick-reply buttons (from the stand-in's catalogue)
    components = [
        {"type": "body", "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "sexta"}]}
    ]
    template = _business_message(
        phone, lambda c: outbound.send_template(c, "lembrete_agendamento", "pt_BR", components)
    )
    assert "Olá, Maria! Lembrete: seu horário é sexta. Podemos confirmar?" in phone.chat().text

    # when
    response = phone.send("template", reply_id="Remarcar", title="Remarcar", context=template.wamid)

    # then
    assert response.status_code == 200
    reply = Message.objects.filter(direction=Message.Direction.IN).order_by("-id").first()
    assert reply is not None
    assert (reply.type, reply.text, reply.content) == (
        "button",
        "Remarcar",
        {"payload": "Remarcar", "text": "Remarcar"},
    )
    assert reply.reply_to == template


def test_it_reacts_to_a_business_message(phone: Phone) -> None:
    # given
    answer = _business_message(phone, lambda c: outbound.send_text(c, "Seu pedido saiu para entrega."))

    # when
    response = phone.send("reaction", message_id=answer.wamid, emoji="❤️")

    # then: the reaction is applied to the business's message
    assert response.status_code == 200
    answer.refresh_from_db()
    assert answer.reactions == {"customer": "❤️"}
    assert "❤️" in response.text


def test_it_refuses_a_file_that_is_not_a_photo_and_sends_nothing(phone: Phone) -> None:
    # when
    response = phone.send("image", files={"image": ("nota.txt", b"hello", "text/plain")})

    # then: the reason is on the phone; nothing reached the business
    assert response.status_code == 200
    assert 'role="alert"' in response.text
    assert Message.objects.count() == 0
    assert WebhookEvent.objects.count() == 0


def test_it_answers_the_poll_with_204_while_nothing_changes(phone: Phone) -> None:
    # given
    phone.send("text", text="Oi")
    first = phone.chat()
    version = first.text.split('data-version="', 1)[1].split('"', 1)[0]

    # when / then: same state, nothing to swap
    assert phone.chat(version).status_code == 204
    # a new message changes it
    phone.send("text", text="Tem alguém aí?")
    assert phone.chat(version).status_code == 200
