"""Screenshots for the README (docs/screenshots/, 1280x800, overwritten on each run): the queue, a
conversation with every message type the intake stores, and the demo phone. The conversation is
built through the real intake: media uploaded to the Graph API stand-in, then signed webhooks."""

from __future__ import annotations

import base64
import struct
import time
import zlib

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import (
    PHONE_NUMBER_ID,
    Server,
    conversation_of,
    log_in,
    query,
    queued_conversation,
    screenshot,
)
from tests.demo.conftest import wait_for

WA_ID = "5511955550009"
NAME = "Helena Martins"
# A 1x1 lossless WebP (stickers are WebP).
WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)

# Scrolls the timeline (only it: scrollIntoView would also move the page) to show a message at the top.
SCROLL_TO = """(el) => {
  const timeline = document.getElementById("timeline");
  timeline.scrollTop += el.getBoundingClientRect().top - timeline.getBoundingClientRect().top - 8;
}"""


def _png(width: int = 320, height: int = 200) -> bytes:
    """A small gradient picture (no imaging library needed)."""
    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in (40 + x * 180 // width, 120 + y * 100 // height, 160))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _upload(server: Server, content: bytes, mime: str, filename: str) -> str:
    """The customer's file, put where Meta would keep it (the stand-in's media store)."""
    answer = httpx.post(
        f"{server.url}/demo/graph/v24.0/{PHONE_NUMBER_ID}/media",
        headers={"Authorization": "Bearer demo-access-token"},
        data={"messaging_product": "whatsapp", "type": mime},
        files={"file": (filename, content, mime)},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def _customer_messages(server: Server) -> list[dict]:
    """One of every type the intake stores, oldest first, as WhatsApp would send them."""
    image = _upload(server, _png(), "image/png", "vitrine.png")
    audio = _upload(server, b"OggS" + bytes(200), "audio/ogg", "audio.ogg")
    video = _upload(server, bytes(8) + b"ftypisom" + bytes(200), "video/mp4", "video.mp4")
    document = _upload(server, PDF, "application/pdf", "orcamento.pdf")
    sticker = _upload(server, WEBP, "image/webp", "sticker.webp")
    w = "wamid.SHOT-"
    return [
        {
            "id": w + "01",
            "type": "text",
            "text": {"body": "Oi! Vi o anúncio da *escova progressiva* e queria saber o preço."},
            "referral": {
                "source_url": "https://fb.me/demo-progressiva",
                "source_id": "120000000000009",
                "source_type": "ad",
                "headline": "Progressiva sem formol com 20% de desconto",
                "body": "Agende seu horário pelo WhatsApp.",
                "media_type": "image",
                "ctwa_clid": "ARAkSHOT-ctwa-0009",
            },
        },
        {"id": w + "02", "type": "image", "image": {"id": image, "mime_type": "image/png", "caption": "Essa foto"}},
        {"id": w + "03", "type": "audio", "audio": {"id": audio, "mime_type": "audio/ogg", "voice": True}},
        {"id": w + "04", "type": "video", "video": {"id": video, "mime_type": "video/mp4", "caption": "Vídeo"}},
        {
            "id": w + "05",
            "type": "document",
            "document": {"id": document, "mime_type": "application/pdf", "filename": "orcamento.pdf"},
        },
        {"id": w + "06", "type": "sticker", "sticker": {"id": sticker, "mime_type": "image/webp", "animated": False}},
        {
            "id": w + "07",
            "type": "location",
            "location": {
                "latitude": -23.561414,
                "longitude": -46.655881,
                "name": "MASP",
                "address": "Av. Paulista, 1578 - Bela Vista, São Paulo - SP",
            },
        },
        {
            "id": w + "08",
            "type": "contacts",
            "contacts": [
                {
                    "name": {"first_name": "Rafael", "last_name": "Martins", "formatted_name": "Rafael Martins"},
                    "phones": [{"phone": "+55 11 98888-7777", "wa_id": "5511988887777", "type": "CELL"}],
                }
            ],
        },
        {
            "id": w + "09",
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "manha", "title": "De manhã"}},
        },
        {"id": w + "10", "type": "button", "button": {"payload": "SIM", "text": "Sim"}},
        {
            "id": w + "11",
            "type": "order",
            "order": {
                "catalog_id": "194836987003835",
                "text": "Quero o kit",
                "product_items": [
                    {"product_retailer_id": "kit-progressiva", "quantity": 1, "item_price": 249.9, "currency": "BRL"},
                    {"product_retailer_id": "escova-raquete", "quantity": 2, "item_price": 19.9, "currency": "BRL"},
                ],
            },
        },
        {"id": w + "12", "type": "reaction", "reaction": {"message_id": w + "01", "emoji": "❤️"}},
        {"id": w + "13", "type": "text", "text": {"body": "Pode ser na terça?"}},
        {
            "id": w + "14",
            "type": "edit",
            "edit": {
                "original_message_id": w + "13",
                "message": {"type": "text", "text": {"body": "Pode ser na quarta?"}},
            },
        },
        {"id": w + "15", "type": "text", "text": {"body": "Mensagem que eu apaguei"}},
        {"id": w + "16", "type": "revoke", "revoke": {"original_message_id": w + "15"}},
        {
            "id": w + "17",
            "type": "unsupported",
            "unsupported": {"type": "poll"},
            "errors": [
                {
                    "code": 131051,
                    "title": "Message type unknown",
                    "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ],
        },
        {
            "id": w + "18",
            "type": "text",
            "text": {"body": "Essa aqui é a cor que eu quero 👆"},
            "context": {"from": WA_ID, "id": w + "02"},
        },
    ]


def _build_conversation(server: Server) -> int:
    """The customer's first message (the offline bot answers it), then the attendant takes the
    conversation over (the bot stays quiet from then on), then every other type."""
    start = int(time.time()) - 30 * 60
    for n, message in enumerate(_customer_messages(server)):
        server.post_webhook(
            {
                "contacts": [{"profile": {"name": NAME}, "wa_id": WA_ID}],
                "messages": [{"from": WA_ID, "timestamp": str(start + n * 60), **message}],
            }
        )
        if n == 0:
            # The bot's answer dated as if it came when the customer wrote (these webhooks are
            # replayed half an hour late), so it shows under the customer's first message.
            server.shell(
                "from datetime import timedelta\n"
                "from django.contrib.auth import get_user_model\n"
                "from conversations.models import Message\n"
                "from handoffs import services\n"
                f"first = Message.objects.get(wamid='{message['id']}')\n"
                "Message.objects.filter(conversation_id=first.conversation_id, sender_kind='bot').update("
                "wa_timestamp=first.wa_timestamp + timedelta(seconds=20))\n"
                "services.take_over(first.conversation_id, get_user_model().objects.get(username='atendente1'))\n"
            )
    conversation_id = conversation_of(server, WA_ID)
    # Every file downloaded from the stand-in (tasks run inline in the embedded mode).
    wait_for(
        lambda: (
            query(
                server,
                "SELECT COUNT(*) FROM conversations_message WHERE conversation_id = ? AND media_status = 'pending'",
                conversation_id,
            )
            == [(0,)]
        ),
        timeout=30,
    )
    return conversation_id


def _backdate(conversations: list[tuple[int, int]]) -> str:
    """Code for ``manage.py shell``: the customers wrote that many minutes ago (waiting times in the queue)."""
    lines = [
        "from datetime import timedelta",
        "from django.db.models import F",
        "from conversations.models import Conversation, Message",
    ]
    for conversation_id, minutes in conversations:
        lines += [
            f"back = timedelta(minutes={minutes})",
            f"Message.objects.filter(conversation_id={conversation_id}).update(wa_timestamp=F('wa_timestamp') - back)",
            f"Conversation.objects.filter(pk={conversation_id}).update(opened=F('opened') - back, "
            "last_inbound=F('last_inbound') - back, last_message=F('last_message') - back)",
        ]
    return "\n".join(lines) + "\n"


def test_it_takes_the_screenshots_for_the_readme(server: Server, new_page) -> None:
    # given: customers waiting in the queue, and one conversation with every message type
    waiting = [
        (queued_conversation(server, wa_id, name, text), minutes)
        for wa_id, name, text, minutes in (
            ("5511955550010", "Isabela Nunes", "Meu pedido veio com defeito, quero trocar", 18),
            ("5521955550011", "João Pedro Alves", "Vocês atendem convênio?", 7),
        )
    ]
    server.shell(_backdate(waiting))
    conversation_id = _build_conversation(server)
    bot_messages = query(
        server,
        "SELECT COUNT(*) FROM conversations_message WHERE conversation_id = ? AND sender_kind = 'bot'",
        conversation_id,
    )[0][0]
    assert bot_messages >= 1, "the offline bot answered the first message"
    phone = new_page()
    phone.goto(f"/demo/phone/?wa_id={WA_ID}&name=Helena+Martins")
    console = new_page()
    log_in(console, "atendente1")

    # the queue
    console.goto("/console/?view=queue")
    expect(console.locator("#console-list .console-row, #console-list [id^=conversation-row-]").first).to_be_visible()
    screenshot(console, "queue.png")

    # the conversation: an attendant's reply (read on the phone), then every type, top to bottom
    console.goto(f"/console/c/{conversation_id}/")
    box = console.locator("#composer form.composer__form:not(.composer__form--note) textarea[name=text]")
    box.fill("Oi, Helena! A progressiva sai por *R$ 350*. Quarta às 10h está livre. 😊")
    box.press("Enter")
    reply = console.locator("#timeline .msg--out").filter(has_text="Quarta às 10h está livre")
    expect(reply.locator(".tick--read")).to_have_count(1, timeout=20_000)
    # the customer's 15 messages, the bot's answer to the first, the attendant's reply
    expect(console.locator("#timeline .msg")).to_have_count(17 + bot_messages, timeout=5_000)
    # top: the ad, text, the bot's answer; then image, audio, video; then document, sticker,
    # location, contacts; then replies, order, edited; bottom: deleted, unsupported, a quoted
    # reply, the attendant's reply
    console.locator("#timeline").evaluate("(el) => { el.scrollTop = 0; }")
    console.wait_for_timeout(300)
    screenshot(console, "conversation-1.png")
    for n, first in ((2, 1 + bot_messages), (3, 4 + bot_messages), (4, 8 + bot_messages)):
        console.locator("#timeline .msg").nth(first).evaluate(SCROLL_TO)
        console.wait_for_timeout(300)
        screenshot(console, f"conversation-{n}.png")
    console.locator("#timeline").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    console.wait_for_timeout(300)
    screenshot(console, "conversation-5.png")

    # the demo phone, with the business's reply
    expect(phone.locator("#phone-chat")).to_contain_text("Quarta às 10h está livre")
    screenshot(phone, "demo-phone.png")
    assert console.dialogs == [] and phone.dialogs == []
