"""Console: the conversation page (timeline, header, customer panel) and the media view.

The page is ``console/conversation.html``; its partials are what the live socket pushes too:
``message`` (one message, ``#message-<id>``), ``timeline`` (``#timeline``: the newest page,
messages inside ``#timeline-messages``), ``older`` (an older page, loaded when its sentinel
scrolls into view), ``header`` (``#conversation-header``) and ``customer-panel``
(``#customer-panel``). Every object is looked up through ``conversations.access``.

Decisions documented here:

- **Phone numbers**: admins and the inbox's supervisors see the whole number; attendants see
  it masked (``+55 11 9****-4321``): enough to recognise a customer on the phone, not to copy
  the list of customers' numbers out of the console. ``may_see_phone`` is the one rule.
- **Read receipts**: opening the page tells WhatsApp we read the customer's latest message
  when the inbox sends read receipts and the viewer is the one who answers: the attendant
  holding the conversation, or anyone who may take it over while it waits in the queue. A
  supervisor or admin watching someone else's conversation, anyone looking at one with the
  bot (the bot answers and marks it read itself) or at a closed one sends nothing: being read
  would promise the customer an answer that person is not about to give. WhatsApp marks every
  earlier message read with the latest one, so only the latest is marked, and only once: an
  atomic ``cache.add`` on that message's id decides (shared by every process through Redis
  in production), so refreshing or two tabs at once send one receipt. Losing the cache only
  costs a repeated receipt, which WhatsApp ignores.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import phonenumbers
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import F, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from bots.models import BotRun
from console import actions, lists
from conversations import access, outbound
from conversations.media import ALLOWED_MIME_TYPES, base_mime
from conversations.models import Conversation, Customer, Membership, Message
from conversations.querycache import CompiledQuery
from handoffs.models import Handoff

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
EARLIER_CONVERSATIONS = 10
# Reactions, edits and revokes are shown on the message they change, not as rows of their own
# (unless their message never arrived: then they stay visible, waiting).
ACTION_TYPES = ("reaction", "edit", "revoke")
READ_RECEIPT_TTL = 30 * 24 * 3600


# --- Who sees what -------------------------------------------------------------------------------


def may_see_phone(user: Any, inbox_id: int, role: str | None = None) -> bool:
    """Admins and the inbox's supervisors see customers' whole numbers; attendants do not.
    Pass ``role`` (``access.role_in``) when it is already known, to save the query."""
    if access.is_admin(user):
        return True
    if role is None:
        role = access.role_in(user, inbox_id)
    return role == Membership.Role.SUPERVISOR


def _mask_digits(formatted: str, keep_first: int, keep_last: int) -> str:
    total = sum(ch.isdigit() for ch in formatted)
    out = []
    seen = 0
    for ch in formatted:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= keep_first or seen > total - keep_last else "*")
        else:
            out.append(ch)
    return "".join(out)


def display_phone(customer: Customer, *, full: bool) -> str:
    """``+55 11 98765-4321`` in full, ``+55 11 9****-4321`` masked: country and area code and
    the first digit stay (they say where, not who), then only the last four digits."""
    raw = customer.phone or (f"+{customer.wa_id}" if customer.wa_id.isdigit() else "")
    if not raw:
        return f"@{customer.username}" if customer.username else ""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None:
        formatted, visible = raw, 3
    else:
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        ndc = phonenumbers.length_of_national_destination_code(number)
        visible = len(str(number.country_code)) + ndc + 1
    if full:
        return formatted
    digits = sum(ch.isdigit() for ch in formatted)
    keep_last = 4 if digits - visible >= 6 else max(0, min(4, digits - visible - 2))
    return _mask_digits(formatted, min(visible, digits - keep_last - 2), keep_last)


# --- Display helpers (the template filters call these) ---------------------------------------


def sender_label(message: Message) -> str:
    kind = message.sender_kind
    if kind == Message.SenderKind.CUSTOMER:
        customer = message.conversation.customer if _loaded(message, "conversation") else None
        return (customer.name if customer and customer.name else "") or gettext("Customer")
    if kind == Message.SenderKind.ATTENDANT:
        user = message.sender
        return (user.get_full_name() or user.get_username()) if user is not None else gettext("Attendant")
    return str(Message.SenderKind(kind).label) if kind in Message.SenderKind.values else kind


def _loaded(message: Message, field: str) -> bool:
    return field in message._state.fields_cache


def _reason_label(content: dict[str, Any]) -> str:
    """A handoff's reason in the reader's language (the stored label was in the writer's)."""
    reason = str(content.get("reason") or "")
    if reason in Handoff.Reason.values:
        return str(Handoff.Reason(reason).label)
    return str(content.get("reason_label") or reason) or gettext("no reason given")


def event_text(message: Message) -> str:
    """A system event ("Ana took the conversation over") in the reader's language, from the
    ids and names ``services.record_event`` kept (see ``handoffs.services``)."""
    content = message.content if isinstance(message.content, dict) else {}
    action = str(content.get("action") or "")
    actor = str(content.get("actor_name") or "") or gettext("The system")
    to = str(content.get("to_name") or "") or gettext("an attendant")
    if action == "handoff":
        # The timeline kind and the ownership action of a bot's handoff are the same event.
        return gettext("The bot handed the conversation to a person: %(reason)s") % {"reason": _reason_label(content)}
    texts = {
        "take_over": gettext("%(actor)s took the conversation over"),
        "assign": gettext("%(actor)s assigned the conversation to %(to)s"),
        "transfer": gettext("%(actor)s transferred the conversation to %(to)s"),
        "to_queue": gettext("%(actor)s returned the conversation to the queue"),
        "to_bot": gettext("%(actor)s returned the conversation to the bot"),
        "close": gettext("%(actor)s closed the conversation"),
        "reopen": gettext("%(actor)s reopened the conversation"),
        "reopen_by_customer": gettext("The customer wrote again: conversation reopened"),
        "bot_paused_by_phone_app": gettext(
            "Someone answered from the WhatsApp Business app: the bot stopped answering this conversation"
        ),
    }
    template = texts.get(action)
    if template is None:
        return message.text or gettext("Event: %(action)s") % {"action": action or "?"}
    return template % {"actor": actor, "to": to}


def event_detail(message: Message) -> str:
    """The free text under an event: a transfer's note, a close's resolution, a handoff's
    details (its ``reason`` is a code, shown translated in ``event_text``)."""
    content = message.content if isinstance(message.content, dict) else {}
    if content.get("action") == "handoff":
        return str(content.get("detail") or "")
    return str(content.get("reason") or "")


# --- The handoff packet ----------------------------------------------------------------------------

# The lead fields the bot records (``bots.tools.LEAD_FIELDS``), in the packet's order; any other
# field the bot recorded follows under its own name.
LEAD_LABELS = {
    "name": _("Name"),
    "service": _("Service"),
    "preferred_day": _("Preferred day"),
    "preferred_time": _("Preferred time"),
    "source": _("How they found us"),
    "notes": _("Notes"),
}


# The page's reads, compiled once per process (conversations/querycache.py): building these
# querysets cost the page more CPU than the database spent answering them.
_CURRENT_HANDOFF = CompiledQuery(
    lambda conversation_id: (
        Handoff.objects.filter(conversation_id=conversation_id)
        .select_related("assignee")
        .order_by(F("closed").desc(nulls_first=True), "-requested", "-id")[:1]
    ),
    -987654321,
)


def current_handoff(conversation: Conversation) -> Handoff | None:
    """The open handoff of the conversation, or its latest one: one query (the open one sorts
    first; there is at most one, ``handoffs_handoff_one_open_uniq``)."""
    return _CURRENT_HANDOFF.one(conversation.pk)


def lead_rows(lead: Any) -> list[tuple[str, str]]:
    """(label, value) for the packet, known fields first; values are the customer's words
    (escaped by the template)."""
    if not isinstance(lead, dict):
        return []
    rows = [(str(label), str(lead[key])) for key, label in LEAD_LABELS.items() if lead.get(key)]
    rows += [(str(key), str(value)) for key, value in lead.items() if key not in LEAD_LABELS and value]
    return rows


# --- Reading the timeline --------------------------------------------------------------------------


def _timeline_rows(conversation_id: int) -> Any:
    """The rows the timeline shows: everything but applied reactions, edits and revokes."""
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .exclude(type__in=ACTION_TYPES, action_pending=False)
        .select_related("sender", "reply_to", "reply_to__sender")
    )


_SAMPLE_TIME = dt.datetime(1901, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
# Keyset on (wa_timestamp, id), the order of the index ``conv_message_conv_ts_idx``.
_NEWEST_PAGE = CompiledQuery(
    lambda conversation_id: _timeline_rows(conversation_id).order_by("-wa_timestamp", "-id")[: PAGE_SIZE + 1],
    -987654321,
)
_OLDER_PAGE = CompiledQuery(
    lambda conversation_id, timestamp, message_id: (
        _timeline_rows(conversation_id)
        .filter(Q(wa_timestamp__lt=timestamp) | Q(wa_timestamp=timestamp, id__lt=message_id))
        .order_by("-wa_timestamp", "-id")[: PAGE_SIZE + 1]
    ),
    -987654321,
    _SAMPLE_TIME,
    -987654322,
)
# A bot message's turn (model, tokens, cost, latency): only the columns the line shows.
_BOT_RUNS = CompiledQuery(
    lambda message_ids: (
        BotRun.objects.filter(reply_id__in=message_ids)
        .only("id", "reply_id", "model", "engine", "tokens_in", "tokens_out", "cost", "latency_ms")
        .order_by("id")
    ),
    [-987654321],
)


def attach_bot_runs(messages: list[Message]) -> None:
    """Give each bot message of a page its turn (``message.timeline_bot_run``, read by the
    ``bot_run`` filter): one query for the page, none when no bot spoke on it."""
    bot = [message for message in messages if message.sender_kind == Message.SenderKind.BOT]
    runs: dict[int, BotRun] = {}
    for run in _BOT_RUNS([message.pk for message in bot]) if bot else ():
        runs.setdefault(run.reply_id, run)
    for message in bot:
        message.timeline_bot_run = runs.get(message.pk)


def message_page(conversation: Conversation, before: Message | None = None) -> tuple[list[Message], Message | None]:
    """A page of at most ``PAGE_SIZE`` messages, oldest first, ending just before ``before``
    (the newest page without it). A page costs the same at any depth. Returns the page and the
    message to continue before (None when this page reaches the start)."""
    if before is None:
        found = _NEWEST_PAGE(conversation.pk)
    else:
        found = _OLDER_PAGE(conversation.pk, before.wa_timestamp, before.pk)
    more = len(found) > PAGE_SIZE
    page = found[:PAGE_SIZE]
    page.reverse()
    for message in page:
        # Saves a query per message for the sender's name and the reply quotes.
        message.conversation = conversation
        if message.reply_to is not None:
            message.reply_to.conversation = conversation
    attach_bot_runs(page)
    return page, (page[0] if more and page else None)


# --- Read receipts ---------------------------------------------------------------------------------


def should_send_read_receipt(user: Any, conversation: Conversation) -> bool:
    """See the module docstring: only the person who answers tells the customer it was read."""
    if not conversation.inbox.read_receipts:
        return False
    if conversation.status == Conversation.Status.ASSIGNED:
        return conversation.assignee_id == user.pk
    if conversation.status == Conversation.Status.QUEUED:
        return access.can_act(user, conversation)
    return False


def read_receipt_key(message_id: int) -> str:
    return f"console:read-receipt:{message_id}"


_LATEST_FROM_CUSTOMER = CompiledQuery(
    lambda conversation_id: (
        Message.objects.filter(
            conversation_id=conversation_id,
            direction=Message.Direction.IN,
            sender_kind=Message.SenderKind.CUSTOMER,
            wamid__isnull=False,
        )
        .exclude(wamid__startswith="noid:")
        .order_by("-wa_timestamp", "-id")[:1]
    ),
    -987654321,
)


def mark_read_on_open(user: Any, conversation: Conversation) -> Message | None:
    """Mark the customer's latest message read on WhatsApp, once. Returns it when queued."""
    if not should_send_read_receipt(user, conversation):
        return None
    latest = _LATEST_FROM_CUSTOMER.one(conversation.pk)
    if latest is None:
        return None
    latest.conversation = conversation
    key = read_receipt_key(latest.pk)
    if not cache.add(key, user.pk, READ_RECEIPT_TTL):
        return None
    try:
        outbound.mark_read(latest)
    except outbound.SendRefused as refused:
        # Window closed or inbox paused: nothing was queued, so a later visit may try again.
        cache.delete(key)
        logger.info("read receipt for message %s not sent: %s", latest.pk, refused.reason)
        return None
    return latest


# --- Views -----------------------------------------------------------------------------------------


def panel_context(user: Any, conversation: Conversation, role: str | None) -> dict[str, Any]:
    """The customer panel's data (also for the live helper re-rendering ``customer-panel``)."""
    customer = conversation.customer
    earlier = access.other_conversations_for(user, conversation, EARLIER_CONVERSATIONS)
    return {
        "customer": customer,
        "phone_full": may_see_phone(user, conversation.inbox_id, role),
        "earlier_conversations": earlier,
    }


def header_context(conversation: Conversation) -> dict[str, Any]:
    """The header's data, for the page and for the live socket's re-render of ``header``
    (``console.live._header``): the handoff packet is inside the header, so it follows every
    change of the conversation live."""
    closes = conversation.window_closes_at()
    now = timezone.now()
    handoff = current_handoff(conversation)
    return {
        "window_closes_at": closes,
        "window_open": closes is not None and now < closes,
        "handoff": handoff,
        "handoff_lead": lead_rows(handoff.lead) if handoff is not None else [],
    }


def _before(request: HttpRequest, conversation: Conversation) -> Message | None:
    raw = request.GET.get("before", "")
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404
    message = Message.objects.filter(conversation=conversation, pk=int(raw)).only("pk", "wa_timestamp").first()
    if message is None:
        raise Http404
    return message


@login_required
@require_GET
def conversation_page(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation_for_user(request.user, pk)
    before = _before(request, conversation)
    messages, older = message_page(conversation, before)
    role = None if access.is_admin(request.user) else access.role_in(request.user, conversation.inbox_id)
    can_act = access.can_act(request.user, conversation)
    context: dict[str, Any] = {
        "conversation": conversation,
        "messages": messages,
        "older": older,
        "can_act": can_act,
        "page_size": PAGE_SIZE,
    }
    if request.htmx and before is not None:
        return render(request, "console/conversation.html#older", context)
    if before is None:
        mark_read_on_open(request.user, conversation)
    context.update(header_context(conversation))
    context.update(panel_context(request.user, conversation, role))
    # The other parts' context goes under ours: a name they share with us must not replace ours.
    merged = {**lists.list_context(request), **actions.composer_context(request, conversation), **context}
    return render(request, "console/conversation.html", merged)


# Content types the media view answers with, per message type; anything else is a download.
INLINE_TYPES = {
    "image": ALLOWED_MIME_TYPES["image"],
    "sticker": ALLOWED_MIME_TYPES["sticker"],
    "audio": ALLOWED_MIME_TYPES["audio"],
    "video": ALLOWED_MIME_TYPES["video"],
}
DOWNLOAD_TYPES = ALLOWED_MIME_TYPES["document"]


# Players (audio, video) ask for byte ranges to seek; Safari will not play a video without them.
RANGE_TYPES = frozenset({"audio", "video"})
BYTE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one range of a ``Range: bytes=...`` header as (first, last) byte, or None to send the
    whole file (no header, several ranges, another unit). Raises when it starts past the end."""
    found = BYTE_RANGE.match(header.strip())
    if found is None or not (found.group(1) or found.group(2)):
        return None
    if found.group(1):
        first = int(found.group(1))
        last = int(found.group(2)) if found.group(2) else size - 1
    else:
        first, last = max(0, size - int(found.group(2))), size - 1
    last = min(last, size - 1)
    if first >= size or first > last:
        raise RangeNotSatisfiable
    return first, last


def _secure(response: HttpResponse) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser were talked into rendering it, the file runs nothing and loads nothing.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@login_required
@require_GET
def media(request: HttpRequest, message_id: int) -> HttpResponse:
    """A message's file, after the access check, never from a public URL. Images, stickers,
    audio and video of the types WhatsApp allows are shown inline; documents (and anything
    else) are downloads with their original name, so no file a customer sent runs as a page
    of our origin (HTML, SVG, scripts): the type is ours, never the stored one blindly."""
    message = access.get_message_for_user(request.user, message_id)
    if not message.media or not message.media.name:
        raise Http404
    mime = base_mime(message.media_mime)
    inline = mime in INLINE_TYPES.get(message.type, frozenset())
    if not inline and mime not in DOWNLOAD_TYPES:
        mime = "application/octet-stream"
    try:
        handle = message.media.open("rb")
        size = message.media.size
    except (FileNotFoundError, OSError):
        raise Http404 from None
    seekable = inline and message.type in RANGE_TYPES
    try:
        wanted = byte_range(request.headers.get("Range", ""), size) if seekable else None
    except RangeNotSatisfiable:
        handle.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return _secure(response)
    if wanted is not None:
        first, last = wanted
        # Audio and video are at most 16 MB (WhatsApp's limit), so a part fits in memory.
        with handle:
            handle.seek(first)
            part = handle.read(last - first + 1)
        response = HttpResponse(part, status=206, content_type=mime)
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Accept-Ranges"] = "bytes"
        return _secure(response)
    filename = message.media_filename or message.media.name.rsplit("/", 1)[-1]
    response = FileResponse(handle, content_type=mime, as_attachment=not inline, filename=filename)
    if seekable:
        response["Accept-Ranges"] = "bytes"
    return _secure(response)


urlpatterns = [
    path("c/<int:pk>/", conversation_page, name="conversation"),
    path("media/<int:message_id>/", media, name="media"),
]
