"""A conversation holding every message type the intake stores, built from the real samples
(tests/fixtures/whatsapp) through the real signed webhook, media downloads included (from the
fake Graph API). For the conversation page and message rendering tests."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

from django.db.models import Q

from conversations.models import Conversation, Customer, Inbox, Message
from tests.conftest import FIXTURES, envelope
from tests.fake_graph import FakeGraph, sha256_b64

WA_ID = "5511987654321"
NAME = "Maria Silva"

# Samples whose first message joins the conversation, in this order (the sample file's prefix).
SAMPLES = [
    "01_text_meta.json",
    "07_text_ctwa_referral_meta.json",
    "04_text_forwarded_pywa.json",
    "05_text_frequently_forwarded_pywa.json",
    "11_image_with_url_meta.json",
    "14_video_forwarded_caption_pywa.json",
    "15_document_caption_filename_pywa.json",
    "17_audio_file_voice_false_pywa.json",
    "19_sticker_animated_meta.json",
    "21_location_named_place_meta.json",
    "23_location_url_only_bindambc.json",
    "24_contacts_meta.json",
    "26_contacts_all_fields_placeholders_netflie.json",
    "27_interactive_button_reply_meta.json",
    "28_interactive_list_reply_meta.json",
    "30_interactive_nfm_reply_address_meta.json",
    "31_button_template_quick_reply_bindambc.json",
    "33_button_with_referral_and_referred_product_netflie.json",
    "37_order_meta.json",
    "39_system_user_changed_number_meta.json",
    "41_unsupported_edit_131051_meta.json",
    "43_unsupported_no_subtype_bindambc.json",
    "44_unknown_type_legacy_errors_netflie.json",
]
MEDIA_BYTES = {
    "image": (b"\xff\xd8\xff\xe0" + b"jpeg" * 200, "image/jpeg"),
    "video": (b"\x00\x00\x00\x18ftypmp42" + b"v" * 200, "video/mp4"),
    "document": (b"%PDF-1.4\n" + b"d" * 300, "application/pdf"),
    "audio": (b"OggS" + b"a" * 200, "audio/ogg"),
    "sticker": (b"RIFF\x00\x00\x00\x00WEBP" + b"s" * 100, "image/webp"),
}


def _first_message(name: str) -> dict:
    data = json.loads((FIXTURES / name).read_text())
    for entry in data["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                return message
    raise AssertionError(f"{name} has no message")


def _post(post_webhook: Callable[..., Any], message: dict, *, field: str = "messages") -> None:
    if field == "messages":
        value = {"contacts": [{"profile": {"name": NAME}, "wa_id": WA_ID}], "messages": [message]}
        body = envelope(value)
    else:
        body = envelope({"message_echoes": [message]})
        body["entry"][0]["changes"][0]["field"] = field
    response = post_webhook(body)
    assert response.status_code == 200, response.content


def build_every_type(
    inbox: Inbox, fake_graph: FakeGraph, post_webhook: Callable[..., Any], capture: Callable[..., Any]
) -> Conversation:
    """Post every sample as one customer's messages (one second apart, ending now), then a
    reaction, an edit and a revoke of the first text, a reply quoting it and an echo from the
    business's phone. ``capture`` is ``django_capture_on_commit_callbacks`` (runs the media
    downloads the intake queues after commit)."""
    start = int(time.time()) - len(SAMPLES) - 10
    first_wamid = ""
    for n, name in enumerate(SAMPLES):
        message = copy.deepcopy(_first_message(name))
        message["from"] = WA_ID
        message.pop("from_user_id", None)
        message["id"] = f"wamid.ALL.{n:02d}"
        message["timestamp"] = str(start + n)
        message.pop("context", None) if name.startswith(("27", "28", "30", "31")) else None
        mtype = message["type"]
        if mtype in MEDIA_BYTES:
            content, mime = MEDIA_BYTES[mtype]
            media_id = f"MEDIA.ALL.{n}"
            message[mtype]["id"] = media_id
            message[mtype]["mime_type"] = mime
            message[mtype]["sha256"] = sha256_b64(content)
            fake_graph.add_media(media_id, content, mime, sha256=sha256_b64(content))
        if name.startswith("39"):
            # The customer "changes" to the number they have, so later samples stay theirs.
            message["system"]["wa_id"] = WA_ID
        if name.startswith("33"):
            message["context"] = {
                "forwarded": True,
                "frequently_forwarded": True,
                "referred_product": {"catalog_id": "CAT", "product_retailer_id": "PRODUCT-7"},
            }
        with capture(execute=True):
            _post(post_webhook, message)
        if n == 0:
            first_wamid = message["id"]
    now = start + len(SAMPLES)
    extras = [
        {"type": "reaction", "reaction": {"message_id": first_wamid, "emoji": "👍"}},
        {
            "type": "edit",
            "edit": {
                "original_message_id": "wamid.ALL.02",
                "message": {"type": "text", "text": {"body": "Versão nova"}},
            },
        },
        {"type": "revoke", "revoke": {"original_message_id": "wamid.ALL.03"}},
        {"type": "text", "text": {"body": "Respondendo à primeira"}, "context": {"id": first_wamid}},
    ]
    for n, extra in enumerate(extras):
        message = {"from": WA_ID, "id": f"wamid.ALL.X{n}", "timestamp": str(now + n), **extra}
        with capture(execute=True):
            _post(post_webhook, message)
    echo = {
        "from": inbox.display_number,
        "to": WA_ID,
        "id": "wamid.ALL.ECHO",
        "timestamp": str(now + len(extras)),
        "type": "text",
        "text": {"body": "Resposta enviada pelo celular"},
    }
    with capture(execute=True):
        _post(post_webhook, echo, field="smb_message_echoes")
    customer = Customer.objects.get(wa_id=WA_ID)
    conversation = Conversation.objects.get(customer=customer)
    # Sanity: the intake stored what we posted (the customer's messages and the echo), in one
    # conversation; the bot's replies, the customer notices and timeline events come beside them.
    posted = Message.objects.filter(conversation=conversation).filter(
        Q(direction=Message.Direction.IN) | Q(sender_kind=Message.SenderKind.PHONE_APP)
    )
    stored = list(posted.values_list("wamid", "type"))
    assert len(stored) == len(SAMPLES) + len(extras) + 1, stored
    return conversation
