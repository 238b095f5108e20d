"""Template filters and tags of the console's conversation page.

``whatsapp`` turns message text into safe HTML: everything is escaped first, and only then do
WhatsApp's markers (``*bold*``, ``_italic_``, ``~strike~``, ```` ```mono``` ````) and http(s)
links become tags we write ourselves. No customer character ever reaches the page unescaped.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import number_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from console import timeline
from conversations.labels import message_type_label
from conversations.models import Conversation, Message
from conversations.outbound import can_send_again
from handoffs.models import Handoff

register = template.Library()

# --- WhatsApp formatting ---------------------------------------------------------------------

CODE = re.compile(r"```(.+?)```", re.S)
# A link ends at whitespace or at a character that cannot be in a URL we print; trailing
# punctuation is trimmed below ("veja https://x.com." links https://x.com).
URL = re.compile(r"https?://[^\s<>\"'`\ue000\ue001]+", re.I)
URL_TRAILING = ".,;:!?*~'\")]}"
# Our placeholders for links while the emphasis is applied (Private Use Area characters, taken
# out of the input first so a message cannot forge one).
PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")
TAGS = {"*": "strong", "_": "em", "~": "del"}
# A marker opens after a non-word character (or the start) and before a non-space, and closes
# after a non-space and before a non-word character: so snake_case_names, 2*3*4 and URLs keep
# their characters. One line at most, and a bounded span, so a hostile text stays linear-ish.
EMPHASIS = {
    marker: re.compile(
        rf"(?<![\w{re.escape(marker)}]){re.escape(marker)}(?=[^\s{re.escape(marker)}])"
        rf"([^\n]{{1,1000}}?)(?<=[^\s{re.escape(marker)}]){re.escape(marker)}(?![\w{re.escape(marker)}])"
    )
    for marker in TAGS
}
MAX_NESTING = 3


def _emphasis(text: str, depth: int = 0) -> str:
    """Escape ``text`` and wrap WhatsApp's emphasis in tags, always properly nested: the earliest
    marker pair wins, its inside is formatted recursively, the rest after it in turn."""
    if depth >= MAX_NESTING:
        return escape(text)
    out: list[str] = []
    pos = 0
    # Each marker's next match, searched again only once the text before it is consumed: a
    # marker with no match is never searched twice (that kept "*_~" * 1365 quadratic).
    upcoming: dict[str, re.Match[str] | None] = {}
    while pos < len(text):
        best: re.Match[str] | None = None
        for marker, pattern in EMPHASIS.items():
            found = upcoming.get(marker, False)
            if found is False or (found is not None and found.start() < pos):
                found = upcoming[marker] = pattern.search(text, pos)
            if found is not None and (best is None or found.start() < best.start()):
                best = found
        if best is None:
            break
        tag = TAGS[best.group(0)[0]]
        out.append(escape(text[pos : best.start()]))
        out.append(f"<{tag}>{_emphasis(best.group(1), depth + 1)}</{tag}>")
        pos = best.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def _split_url(candidate: str) -> tuple[str, str]:
    """Trim punctuation that ends a sentence rather than the link; keep balanced parentheses."""
    url = candidate
    while url and url[-1] in URL_TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url, candidate[len(url) :]


def _link(url: str) -> str:
    return format_html('<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>', url, url)


def _inline(text: str) -> str:
    links: list[str] = []

    def hold(match: re.Match[str]) -> str:
        url, rest = _split_url(match.group(0))
        if not urlsplit(url).netloc:
            return match.group(0)
        links.append(_link(url))
        return f"\ue000{len(links) - 1}\ue001{rest}"

    held = URL.sub(hold, text)
    html = _emphasis(held)
    return PLACEHOLDER.sub(lambda m: links[int(m.group(1))], html)


def format_whatsapp(value: Any) -> SafeString:
    """The ``whatsapp`` filter as a function (the live fragments and tests use it too)."""
    if value is None:
        return mark_safe("")
    text = str(value).replace("\ue000", "\ufffd").replace("\ue001", "\ufffd")
    out: list[str] = []
    pos = 0
    for block in CODE.finditer(text):
        out.append(_inline(text[pos : block.start()]))
        out.append(f"<code>{escape(block.group(1))}</code>")
        pos = block.end()
    out.append(_inline(text[pos:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece above is escaped or built by format_html


@register.filter(name="whatsapp")
def whatsapp(value: Any) -> SafeString:
    return format_whatsapp(value)


# --- Messages -------------------------------------------------------------------------------------


@register.filter
def media_url(message: Message) -> str:
    """The access-checked URL of a message's stored file, or "" when there is no file to show."""
    if not message.media:
        return ""
    try:
        return reverse("console:media", args=[message.pk])
    except NoReverseMatch:
        return ""


@register.filter
def type_label(value: str) -> str:
    return message_type_label(value or "")


@register.filter
def resendable(message: Message) -> bool:
    return can_send_again(message)


@register.filter
def sender_label(message: Message) -> str:
    return timeline.sender_label(message)


@register.filter
def event_text(message: Message) -> str:
    return timeline.event_text(message)


@register.filter
def event_detail(message: Message) -> str:
    return timeline.event_detail(message)


@register.filter
def bot_run(message: Message) -> Any:
    """The bot turn that sent this message (model, tokens, cost, latency), or None. The page
    reads them for all its messages at once (``timeline.attach_bot_runs``); a live fragment of
    one message asks for its own, and only for a bot's message."""
    if message.sender_kind != Message.SenderKind.BOT:
        return None
    if "timeline_bot_run" in message.__dict__:
        return message.timeline_bot_run
    runs = list(message.bot_runs.all())
    return runs[0] if runs else None


@register.filter
def snippet(message: Message | None) -> str:
    """A short line standing for a message in a reply quote."""
    if message is None:
        return ""
    text = message.text or message.caption or message_type_label(message.type)
    return text if len(text) <= 140 else text[:139] + "…"


@register.filter
def http_url(value: Any) -> str:
    """``value`` if it is an http(s) address we may link to, else "" (no javascript: links)."""
    if not isinstance(value, str):
        return ""
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else ""


def _coordinate(value: Any, limit: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if -limit <= number <= limit else None


@register.filter
def map_url(content: Any) -> str:
    """An OpenStreetMap link for a location message (a link, never an embedded map)."""
    if not isinstance(content, dict):
        return ""
    lat, lon = _coordinate(content.get("latitude"), 90), _coordinate(content.get("longitude"), 180)
    if lat is None or lon is None:
        return ""
    query = urlencode({"mlat": f"{lat:.6f}", "mlon": f"{lon:.6f}"})
    return f"https://www.openstreetmap.org/?{query}#map=17/{lat:.6f}/{lon:.6f}"


@register.filter
def order_total(content: Any) -> str:
    """Sum of an order's items in their currency ("R$ 60,00" in Portuguese), or "" when they do
    not add up (mixed currencies)."""
    items = content.get("product_items") if isinstance(content, dict) else None
    if not isinstance(items, list) or not items:
        return ""
    total = Decimal(0)
    currencies = set()
    for item in items:
        if not isinstance(item, dict):
            return ""
        try:
            total += Decimal(str(item.get("item_price"))) * Decimal(str(item.get("quantity") or 1))
        except (InvalidOperation, ValueError):
            return ""
        currencies.add(str(item.get("currency") or ""))
    if len(currencies) != 1:
        return ""
    return money(total, currencies.pop())


@register.filter
def item_price(item: Any) -> str:
    """An order item's price in its currency ("" when the item names none)."""
    if not isinstance(item, dict) or item.get("item_price") in (None, ""):
        return ""
    return money(item["item_price"], item.get("currency") or "")


# How Brazilians write the currencies a catalogue is likely to use; others by their ISO code.
CURRENCY_SYMBOLS = {"BRL": "R$", "USD": "US$", "EUR": "€", "GBP": "£"}


@register.filter
def money(amount: Any, currency: Any = "") -> str:
    """An amount with two decimals in the active language's format and its currency's symbol:
    "R$ 1.234,50" in Portuguese, "R$ 1,234.50" in English. A value that is not a number is
    shown as it came."""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return f"{amount} {currency}".strip()
    if not value.is_finite():
        return f"{amount} {currency}".strip()
    code = str(currency or "").strip().upper()
    number = number_format(value.quantize(Decimal("0.01")), decimal_pos=2, use_l10n=True, force_grouping=True)
    symbol = CURRENCY_SYMBOLS.get(code, code)
    return f"{symbol} {number}".strip()


@register.filter
def as_datetime(value: Any) -> datetime | None:
    """An ISO timestamp kept in JSON (edit history) as a datetime for the ``date`` filter."""
    if isinstance(value, datetime):
        return value
    return parse_datetime(value) if isinstance(value, str) else None


@register.filter
def iso(value: datetime | None) -> str:
    """A local ISO 8601 time to the second, which every browser's Date.parse reads."""
    if not isinstance(value, datetime):
        return ""
    return timezone.localtime(value).replace(microsecond=0).isoformat()


@register.filter
def pretty_json(value: Any) -> str:
    """A tool call's arguments or result as indented JSON (plain text: the template escapes it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


@register.filter
def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


@register.filter
def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@register.filter
def pick(value: Any, keys: str) -> Any:
    """The first non-empty of ``value[key]`` for comma-separated keys (dotted paths allowed):
    JSON from WhatsApp may lack any key, and a missing key in a ``default:`` argument would
    raise."""
    for key in keys.split(","):
        current = value
        for part in key.strip().split("."):
            current = current.get(part) if isinstance(current, dict) else getattr(current, part, None)
        if current:
            return current
    return ""


@register.filter
def reaction_side(side: str) -> str:
    return gettext("Customer") if side == "customer" else gettext("Business")


# --- Handoffs ------------------------------------------------------------------------------------

# Only these can have an open handoff worth showing on a row.
HANDOFF_STATUSES = ("queued", "assigned")


@register.simple_tag
def attach_open_handoffs(conversations: Any) -> str:
    """Give each row of a list its open handoff (``conversation.open_handoff``) in one query
    for the whole page, so the ``row`` partial costs nothing more per row."""
    rows = [row for row in conversations or () if isinstance(row, Conversation)]
    found: dict[int, Handoff] = {}
    ids = [row.pk for row in rows if row.status in HANDOFF_STATUSES]
    if ids:
        found = {h.conversation_id: h for h in Handoff.objects.filter(conversation_id__in=ids, closed__isnull=True)}
    for row in rows:
        row.open_handoff = found.get(row.pk)
    return ""


@register.filter
def open_handoff(conversation: Conversation) -> Handoff | None:
    """The row's open handoff: attached by ``attach_open_handoffs`` on a list page; a row the
    live socket renders alone looks its own up (waiting or assigned conversations only)."""
    if hasattr(conversation, "open_handoff"):
        return conversation.open_handoff
    if conversation.status not in HANDOFF_STATUSES:
        return None
    return Handoff.objects.filter(conversation_id=conversation.pk, closed__isnull=True).first()


# --- Customers -------------------------------------------------------------------------------------


@register.simple_tag(takes_context=True)
def customer_phone(context: Any, customer: Any, inbox_id: int) -> str:
    """The customer's number, whole or masked for the viewer (``timeline.may_see_phone``).
    Uses ``phone_full`` when the view computed it; otherwise decides for ``request.user`` (a
    live fragment), and masks when there is no one to decide for."""
    full = context.get("phone_full")
    if full is None:
        request = context.get("request")
        user = getattr(request, "user", None)
        full = user is not None and timeline.may_see_phone(user, inbox_id)
    return timeline.display_phone(customer, full=bool(full))
