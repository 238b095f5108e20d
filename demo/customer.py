"""The customer's side of the demo: what the phone sends, delivered to the business exactly as
WhatsApp delivers it, a webhook POST signed with the inbox's app secret to our own
``/webhooks/whatsapp/``. The real intake stores and applies it; nothing here touches the
database directly (only the inbox is read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import httpx
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from conversations.models import Inbox
from conversations.whatsapp.signature import sign
from demo import payloads
from demo.network import Media, digits, encode, network, new_media_id, new_wamid

IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
IMAGE_MAX = 5 * 1024 * 1024
TEXT_MAX = 4096
WEBHOOK_TIMEOUT = 60.0


class PhoneError(Exception):
    """A send the phone could not make; ``message`` is for the person holding it."""

    def __init__(self, message: Any) -> None:
        super().__init__(str(message))
        self.message = message


@dataclass(frozen=True)
class Identity:
    wa_id: str
    name: str


def normalize_number(raw: str) -> str:
    """A WhatsApp id from what a person types: digits only, Brazil's country code added to a
    number with area code alone (11 98765-4321)."""
    number = digits(raw)
    if len(number) in (10, 11) and not raw.strip().startswith("+"):
        number = "55" + number
    if not 8 <= len(number) <= 15:
        raise PhoneError(_("Type a phone number with its area code, for example 11 98765-4321."))
    return number


def demo_inbox() -> Inbox | None:
    """The inbox the phone writes to: the default one (WHATSAPP_PHONE_NUMBER_ID), else the first."""
    inboxes = Inbox.objects.active()
    return (
        inboxes.filter(phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID).first()
        if settings.WHATSAPP_PHONE_NUMBER_ID
        else None
    ) or inboxes.order_by("id").first()


def _deliver(inbox: Inbox, who: Identity, kind: str, body: Any, webhook_url: str, *, context: str = "") -> str:
    """Post one customer message to the business's webhook; return its wamid."""
    wamid = new_wamid()
    raw = encode(
        payloads.customer_message(
            inbox, wa_id=who.wa_id, name=who.name, wamid=wamid, kind=kind, body=body, context=context
        )
    )
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, inbox.app_secret)}
    try:
        response = httpx.post(webhook_url, content=raw, headers=headers, timeout=WEBHOOK_TIMEOUT)
    except httpx.HTTPError as exc:
        raise PhoneError(gettext("WhatsApp could not reach the business: %(error)s") % {"error": exc}) from exc
    if response.status_code != 200:
        raise PhoneError(
            gettext("The business's webhook answered %(status)s: %(text)s")
            % {"status": response.status_code, "text": response.text[:200]}
        )
    return wamid


def send_text(inbox: Inbox, who: Identity, text: str, webhook_url: str) -> str:
    if not text.strip():
        raise PhoneError(_("Type a message before sending."))
    if len(text) > TEXT_MAX:
        raise PhoneError(gettext("A message can have at most %(max)s characters.") % {"max": TEXT_MAX})
    return _deliver(inbox, who, "text", {"body": text}, webhook_url)


def send_image(inbox: Inbox, who: Identity, file: IO[bytes], mime: str, caption: str, webhook_url: str) -> str:
    """The phone uploads the photo to WhatsApp (the stand-in keeps it under a media id) and the
    webhook carries only that id: the business downloads it through the Graph API."""
    mime = (mime or "").split(";")[0].strip().lower()
    if mime not in IMAGE_TYPES:
        raise PhoneError(_("Choose a JPEG or PNG photo."))
    content = file.read(IMAGE_MAX + 1)
    if not content:
        raise PhoneError(_("The file is empty."))
    if len(content) > IMAGE_MAX:
        raise PhoneError(_("WhatsApp sends photos of up to 5 MB."))
    media = network.add_media(Media(id=new_media_id(), content=content, mime_type=mime))
    body: dict[str, Any] = {"mime_type": mime, "sha256": media.sha256_b64, "id": media.id}
    if caption.strip():
        body["caption"] = caption.strip()[:1024]
    return _deliver(inbox, who, "image", body, webhook_url)


def send_location(
    inbox: Inbox, who: Identity, latitude: str, longitude: str, name: str, address: str, webhook_url: str
) -> str:
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        raise PhoneError(_("Give the location's latitude and longitude as numbers.")) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PhoneError(_("Give the location's latitude and longitude as numbers."))
    body: dict[str, Any] = {"latitude": lat, "longitude": lon}
    if name.strip():
        body["name"] = name.strip()
    if address.strip():
        body["address"] = address.strip()
    return _deliver(inbox, who, "location", body, webhook_url)


def send_reply(
    inbox: Inbox, who: Identity, kind: str, reply_id: str, title: str, context: str, webhook_url: str
) -> str:
    """A tap on one of the business's buttons: ``button_reply`` (reply buttons), ``list_reply``
    (a list menu's row) or ``template`` (a template's quick-reply button, a ``button`` message)."""
    if not title.strip():
        raise PhoneError(_("That button has no title."))
    if kind == "template":
        return _deliver(
            inbox, who, "button", {"payload": reply_id or title, "text": title}, webhook_url, context=context
        )
    if kind not in ("button_reply", "list_reply"):
        raise PhoneError(_("Unknown kind of reply."))
    interactive = {"type": kind, kind: {"id": reply_id or title, "title": title}}
    return _deliver(inbox, who, "interactive", interactive, webhook_url, context=context)


def send_reaction(inbox: Inbox, who: Identity, message_id: str, emoji: str, webhook_url: str) -> str:
    if not message_id:
        raise PhoneError(_("Choose the message to react to."))
    if len(emoji) > 10:
        raise PhoneError(_("Choose one emoji."))
    return _deliver(inbox, who, "reaction", {"message_id": message_id, "emoji": emoji}, webhook_url)
