"""What the customer's phone shows: the chat with the business, read from the database (only
read) and from the stand-in's memory, and the ``read`` receipts it sends once it has shown the
business's messages.

The customer sees their own messages and the business's messages that WhatsApp accepted
(a wamid and a status from ``sent`` on); internal notes, events and sends that never left
are not on the customer's phone. Reactions show on the message they react to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.urls import reverse

from conversations.labels import message_type_label
from conversations.models import MEDIA_TYPES, Inbox, Message
from demo import catalog, payloads
from demo.network import courier, network

LIMIT = 100
VISIBLE_OUT = (Message.Status.SENT, Message.Status.DELIVERED, Message.Status.READ, Message.Status.PLAYED)
# Rows that change another message rather than show one.
NOT_BUBBLES = ("reaction", "edit", "revoke")
REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")
CANNED = (("sim", "Sim"), ("nao", "Não"))


@dataclass
class Button:
    kind: str  # button_reply | list_reply | template
    id: str
    title: str
    description: str = ""


@dataclass
class Bubble:
    message: Message
    mine: bool
    text: str = ""
    header: str = ""
    image_url: str = ""
    media_label: str = ""
    location: dict[str, Any] | None = None
    map_url: str = ""
    buttons: list[Button] = field(default_factory=list)
    ticks: str = ""  # the customer's own messages: delivered | read

    @property
    def wamid(self) -> str:
        return self.message.wamid or ""

    @property
    def reactions(self) -> list[str]:
        return [e for e in (self.message.reactions or {}).values() if e]


def bubbles_for(inbox: Inbox, wa_id: str) -> list[Bubble]:
    rows = list(
        Message.objects.filter(conversation__inbox=inbox, conversation__customer__wa_id=wa_id)
        .filter(
            Q(direction=Message.Direction.IN)
            | Q(direction=Message.Direction.OUT, wamid__isnull=False, status__in=VISIBLE_OUT)
        )
        .exclude(type__in=NOT_BUBBLES)
        .order_by("-wa_timestamp", "-id")[:LIMIT]
    )
    rows.reverse()
    bubbles = [_bubble(message) for message in rows]
    _read_ticks(bubbles)
    return bubbles


def media_id_of(message: Message) -> str:
    """Ours: the id the phone uploaded; the business's: the id its upload got."""
    return message.media_id or str((message.payload or {}).get(message.type, {}).get("id") or "")


def _media_url(message: Message) -> str:
    # The stand-in's copy, else the app's own stored file (the stand-in forgets on a restart).
    media_id = media_id_of(message)
    if (media_id and network.get_media(media_id) is not None) or message.media:
        return reverse("demo:media", args=[message.pk])
    return ""


def _bubble(message: Message) -> Bubble:
    mine = message.direction == Message.Direction.IN
    bubble = Bubble(message=message, mine=mine, text=message.text)
    content = message.content or {}
    if message.type in MEDIA_TYPES:
        bubble.text = message.caption or str(content.get("caption") or "")
        if message.type in ("image", "sticker"):
            bubble.image_url = _media_url(message)
        bubble.media_label = message.media_filename or message_type_label(message.type)
    elif message.type == "location":
        bubble.location = content
        lat, lon = content.get("latitude"), content.get("longitude")
        if lat is not None and lon is not None:
            bubble.map_url = "https://www.openstreetmap.org/?" + urlencode({"mlat": lat, "mlon": lon, "zoom": 16})
    elif message.type == "interactive" and not mine:
        bubble.header = str((content.get("header") or {}).get("text") or "")
        bubble.text = str((content.get("body") or {}).get("text") or message.text)
        action = content.get("action") or {}
        if content.get("type") == "button":
            bubble.buttons = [
                Button("button_reply", str(b["reply"].get("id", "")), str(b["reply"].get("title", "")))
                for b in action.get("buttons") or []
                if isinstance(b, dict) and isinstance(b.get("reply"), dict)
            ]
        elif content.get("type") == "list":
            bubble.buttons = [
                Button("list_reply", str(row.get("id", "")), str(row.get("title", "")), str(row.get("description", "")))
                for section in action.get("sections") or []
                for row in (section.get("rows") or [])
                if isinstance(row, dict)
            ]
    elif message.type == "template" and not mine:
        text, buttons = catalog.render(content)
        bubble.text = text
        bubble.buttons = [Button("template", title, title) for title in buttons]
    if not (bubble.text or bubble.image_url or bubble.media_label or bubble.location):
        bubble.text = message_type_label(message.type)
    return bubble


def _read_ticks(bubbles: list[Bubble]) -> None:
    """Blue ticks on the customer's messages up to the last one the business marked read
    (marking one read marks the earlier ones too); grey double ticks before that."""
    read = False
    for bubble in reversed(bubbles):
        if not bubble.mine:
            continue
        read = read or bubble.wamid in network.read_marks
        bubble.ticks = "read" if read else "delivered"


def quick_replies(bubbles: list[Bubble]) -> tuple[str, list[Button]]:
    """Canned "Sim"/"Não" answers to the business's last message, unless it has buttons of its
    own (those are tapped on the message itself). Returns (the message replied to, buttons)."""
    last = next((b for b in reversed(bubbles) if not b.mine), None)
    if last is not None and last.buttons:
        return last.wamid, []
    return (last.wamid if last else ""), [Button("button_reply", key, title) for key, title in CANNED]


def report_read(inbox: Inbox, bubbles: list[Bubble]) -> int:
    """The phone has shown these messages: send ``read`` for the business's ones that went
    through the stand-in (once each), through the signed webhook, after their delivered."""
    taken = network.take_unread([b.wamid for b in bubbles if not b.mine and b.wamid])
    for sent in taken:
        courier.post(sent.webhook_url, payloads.status(inbox, sent, "read"), inbox.app_secret)
    return len(taken)


def version(bubbles: list[Bubble], typing: bool) -> str:
    """Changes whenever what the phone shows changes: the poll answers 204 otherwise."""
    parts = [(b.message.pk, b.message.updated.isoformat(), b.ticks, b.image_url, b.message.status) for b in bubbles]
    return hashlib.sha256(repr((parts, typing)).encode()).hexdigest()[:16]
