"""The bots app's writes and the reads the reply pipeline shares with the "try the bot" page:
an inbox's bot configuration, the lead the bot collects, and a conversation's messages as the
lines the bot reads (``bots.turn.Line``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from bots import hours
from bots.models import BotConfig, Lead, ModelPrice
from bots.turn import Line
from conversations.models import Conversation, Inbox, Message
from conversations.querycache import CompiledQuery

# How many earlier messages of the conversation the bot reads with the new ones: enough for a
# follow-up question, few enough to keep a language model's prompt (and its cost) small.
HISTORY_LINES = 20
# A lead field's value is the customer's words, kept short in the handoff packet.
LEAD_VALUE_MAX = 300
LEAD_FIELDS_MAX = 20


def config_for(inbox_or_id: Inbox | int) -> BotConfig:
    """The inbox's bot, created with the defaults (the offline bot) the first time it is asked for."""
    inbox_id = inbox_or_id.pk if isinstance(inbox_or_id, Inbox) else int(inbox_or_id)
    config = BotConfig.objects.filter(inbox_id=inbox_id).select_related("inbox").first()
    if config is not None:
        return config
    try:
        with transaction.atomic():
            config = BotConfig.objects.create(inbox_id=inbox_id)
    except IntegrityError:
        # Two workers created it at once: the other one's row is the inbox's bot.
        config = BotConfig.objects.get(inbox_id=inbox_id)
    return BotConfig.objects.select_related("inbox").get(pk=config.pk)


# The reply pipeline reads its inbox's bot for every customer message, and with it the
# business hours and the model's price; they change only when someone saves them in the
# admin. Each process keeps what it read for BOT_CONFIG_CACHE_SECONDS: a save in this process
# forgets it at once (bots.receivers), one in another process is seen within that time.
_configs: dict[int, tuple[float, BotConfig]] = {}
_configs_lock = threading.Lock()


def turn_config(inbox_id: int) -> BotConfig:
    """``config_for``, read at most once per BOT_CONFIG_CACHE_SECONDS per process, with its
    business hours and model prices loaded (``hours`` and ``engine.cost_of`` then ask the
    database nothing). For the reply pipeline; a page showing the configuration reads it fresh."""
    now = time.monotonic()
    cached = _configs.get(inbox_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    config = config_for(inbox_id)
    config.loaded_intervals = hours.intervals(config)
    config.loaded_prices = {price.model: price for price in ModelPrice.objects.all()}
    if settings.BOT_CONFIG_CACHE_SECONDS > 0:
        with _configs_lock:
            _configs[inbox_id] = (now + settings.BOT_CONFIG_CACHE_SECONDS, config)
    return config


def forget_configs() -> None:
    with _configs_lock:
        _configs.clear()


def lead_data(conversation: Conversation | int) -> dict[str, Any]:
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    row = Lead.objects.filter(conversation_id=pk).values_list("data", flat=True).first()
    return dict(row or {})


def _clean_lead(fields: dict[str, Any]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in list(fields.items())[:LEAD_FIELDS_MAX]:
        key = str(key).strip()[:60]
        if not key or value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        text = text.strip()[:LEAD_VALUE_MAX]
        if text:
            clean[key] = text
    return clean


def record_lead(conversation: Conversation | int, fields: dict[str, Any]) -> Lead | None:
    """Merge what the bot learnt (name, service, preferred day and time, how they found us) into
    the conversation's lead; a later value for a field replaces the earlier one. None when
    there was nothing to record."""
    clean = _clean_lead(fields or {})
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    if not clean:
        return Lead.objects.filter(conversation_id=pk).first()
    with transaction.atomic():
        lead, _created = Lead.objects.select_for_update().get_or_create(conversation_id=pk)
        lead.data = {**(lead.data or {}), **clean}
        lead.save(update_fields=["data", "updated"])
    return lead


# --- Messages as the bot reads them -----------------------------------------------------------

CAPTIONED = frozenset({"image", "video", "document"})


def role_of(message: Message) -> str:
    if message.direction == Message.Direction.IN:
        return "system" if message.sender_kind == Message.SenderKind.SYSTEM else "customer"
    if message.sender_kind == Message.SenderKind.BOT:
        return "bot"
    if message.sender_kind in (Message.SenderKind.ATTENDANT, Message.SenderKind.PHONE_APP):
        return "attendant"
    return "system"


def _choice(message: Message) -> tuple[str, str]:
    """A tapped reply button or list row: (its id, its title)."""
    content = message.content or {}
    if message.type == "interactive":
        kind = str(content.get("type") or "")
        reply = content.get(kind) if isinstance(content.get(kind), dict) else {}
        return str(reply.get("id") or ""), str(reply.get("title") or message.text or "")
    if message.type == "button":
        # A template's quick-reply button: its payload is the id we gave it.
        return str(content.get("payload") or ""), str(content.get("text") or message.text or "")
    return "", ""


def _location_text(message: Message) -> str:
    content = message.content or {}
    place = message.text or ", ".join(str(content.get(k) or "") for k in ("name", "address") if content.get(k))
    if place:
        return gettext("[Location: %(place)s]") % {"place": place}
    latitude, longitude = content.get("latitude"), content.get("longitude")
    if latitude is not None and longitude is not None:
        return gettext("[Location: %(lat)s, %(lon)s]") % {"lat": latitude, "lon": longitude}
    return gettext("[Location]")


def _contacts_text(message: Message) -> str:
    return gettext("[Shared contacts: %(names)s]") % {"names": message.text or "?"}


def line_for(message: Message) -> Line:
    """One message as the bot reads it. An audio without a transcript is an unheard audio; an
    image, video or document without a caption is unseen media (stickers say nothing)."""
    role = role_of(message)
    choice_id = ""
    unheard = unseen = False
    kind = message.type
    if kind == "text":
        text = message.text
    elif kind in CAPTIONED:
        text = message.caption or message.text
        unseen = role == "customer" and not text.strip()
    elif kind == "audio":
        text = message.transcript
        unheard = role == "customer" and not text
    elif kind in ("interactive", "button"):
        if role == "customer":
            choice_id, text = _choice(message)
        else:
            text = message.text
    elif kind == "location":
        text = _location_text(message)
    elif kind == "contacts":
        text = _contacts_text(message)
    elif kind == "template":
        text = message.text
    else:
        text = message.text or message.caption
    return Line(
        role=role,
        text=(text or "").strip(),
        message_id=message.pk,
        type=kind,
        choice_id=choice_id,
        unheard_audio=unheard,
        unseen_media=unseen,
        when=message.wa_timestamp,
    )


# What the bot never reads: notes and timeline events, reactions and edits (applied to their
# message), and system notices (a number change).
SKIPPED_TYPES = ("reaction", "edit", "revoke", "unsupported", "system", "note", "event")


def conversation_messages(conversation_id: int) -> Any:
    """This conversation's messages the bot may read, oldest first (notes and events excluded).
    Only this conversation's: a closed conversation's successor starts a fresh context."""
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .exclude(direction=Message.Direction.INTERNAL)
        .exclude(type__in=SKIPPED_TYPES)
        .filter(revoked__isnull=True)
        .order_by("id")
    )


def _recent(conversation_id: int, through_id: int, limit: int = HISTORY_LINES) -> Any:
    return conversation_messages(conversation_id).filter(id__lte=through_id).order_by("-id")[:limit]


# Every bot turn reads these: compiled once per process (conversations/querycache.py).
_RECENT = CompiledQuery(_recent, -987654321, -987654322)


def history_lines(conversation_id: int, through_id: int, *, limit: int = HISTORY_LINES) -> list[Line]:
    """The conversation's recent lines up to and including message ``through_id``, oldest first."""
    if limit == HISTORY_LINES:
        recent = _RECENT(conversation_id, through_id)
    else:
        recent = list(_recent(conversation_id, through_id, limit))
    recent.reverse()
    return lines_for(recent)


def lines_for(messages: Iterable[Message]) -> list[Line]:
    lines = []
    for message in messages:
        line = line_for(message)
        if line.text or line.unheard_audio or line.unseen_media or line.choice_id:
            lines.append(line)
    return lines
