"""Searching conversations by customer name, phone or message text.

On PostgreSQL: full-text search in Portuguese with accents folded, on the expressions the GIN
indexes of migration conversations 0005 were built on (an expression index is used only when
the query's expression is the same, so these expressions live here, once). "acucar" finds
"açúcar", "Joao" finds "João"; every word must match, and each word also matches as a prefix
("cafe" finds "cafeteira"), since people type the beginning of what they remember. Digits
(four or more) also match anywhere in the phone number (trigram index).

On SQLite (the embedded mode): ``icontains``, without accent folding.

Both return a condition on conversations (``matching``) and, for the page shown, which
message matched (``snippets``): one query for the page, never one per row.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connection
from django.db.models import BooleanField, Exists, Func, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from conversations.models import Conversation, Customer, Message

MESSAGE_CONFIG = "portuguese_unaccent"
NAME_CONFIG = "simple_unaccent"
MIN_PHONE_DIGITS = 4
MAX_WORDS = 8
SNIPPET_CHARS = 120
# Above this many matching messages (the planner's estimate), a search walks the list instead
# of collecting every match (see ``matching``).
COMMON_MATCHES = 5000


def _any_of(column: str, ids: list[int]) -> Q:
    """``column = ANY(%s)`` with the ids as ONE array parameter: as ``__in`` Django resolves
    and the driver splits one placeholder per id, which for a few thousand matches cost more
    CPU (about 100 ms for 8,800) than the whole rest of the page."""
    table = Conversation._meta.db_table
    sql = f'"{table}"."{column}" = ANY(%s::bigint[])'
    return Q(RawSQL(sql, (ids,), output_field=BooleanField()))  # noqa: S611 - our column names; the ids are a bound parameter


_WORD = re.compile(r"\w+", re.UNICODE)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


class MessageDocument(Func):
    """``to_tsvector('portuguese_unaccent', text || ' ' || caption)``: conv_message_search_idx.

    ``indexed=False`` spells the same document so that it does not match the index
    (``COALESCE`` on columns that are never NULL): for a page's few hundred messages, read by
    conversation, checking each is cheaper than the whole index's matches for a common word.
    """

    template = f"to_tsvector('{MESSAGE_CONFIG}'::regconfig, %(expressions)s)"
    arg_joiner = " || ' ' || "
    output_field = SearchVectorField()

    def __init__(self, *, indexed: bool = True) -> None:
        if indexed:
            super().__init__("text", "caption")
        else:
            super().__init__(Coalesce("text", Value("")), Coalesce("caption", Value("")))


class NameDocument(Func):
    """``to_tsvector('simple_unaccent', name)``: conv_customer_name_search_idx."""

    template = f"to_tsvector('{NAME_CONFIG}'::regconfig, %(expressions)s)"
    output_field = SearchVectorField()

    def __init__(self) -> None:
        super().__init__("name")


def words(text: str) -> list[str]:
    """The words of a search, letters and digits only: nothing the user types can be read as
    tsquery syntax (``&``, ``|``, ``!``, ``:``) or as a LIKE wildcard."""
    return _WORD.findall(text.replace("_", " "))[:MAX_WORDS]


def _tsquery(found: list[str], config: str) -> SearchQuery:
    # Every word required, each as a prefix. The words are parameters, never SQL.
    return SearchQuery(" & ".join(f"{word}:*" for word in found), config=config, search_type="raw")


def matching(text: str) -> Q | None:
    """A condition on conversations: the customer's name or phone, or any of its messages,
    matches ``text``. None when there is nothing to search for; a search made only of
    punctuation matches nothing."""
    if not text.strip():
        return None
    found = words(text)
    digits = re.sub(r"\D", "", text)
    if not found:
        return Q(pk__in=[])
    phone = Q(phone__contains=digits) if len(digits) >= MIN_PHONE_DIGITS else Q(pk__in=[])
    if not is_postgres():
        name = Q()
        body = Q()
        for word in found:
            name &= Q(name__icontains=word)
            body &= Q(text__icontains=word) | Q(caption__icontains=word)
        return Q(customer_id__in=Customer.objects.filter(name | phone).values("pk")) | Q(
            pk__in=Message.objects.filter(body).values("conversation_id")
        )

    customers = Customer.objects.alias(doc=NameDocument()).filter(Q(doc=_tsquery(found, NAME_CONFIG)) | phone)
    query = _tsquery(found, MESSAGE_CONFIG)
    messages = Message.objects.alias(doc=MessageDocument()).filter(doc=query)
    if _estimated_rows(messages) <= COMMON_MATCHES:
        # A rare word: the matching customers and messages, from the GIN indexes, are few.
        # Read their ids first (one query): as lists of values the planner fetches exactly
        # those conversations by index and sorts them; as subqueries it guesses their number
        # and scans every visible conversation.
        found_ids = (
            customers.order_by()
            .annotate(kind=Value(1))
            .values_list("kind", "pk")
            .union(messages.order_by().annotate(kind=Value(2)).values_list("kind", "conversation_id"))
        )
        customer_ids: list[int] = []
        conversation_ids: list[int] = []
        for kind, pk in found_ids:
            (customer_ids if kind == 1 else conversation_ids).append(pk)
        return _any_of("customer_id", sorted(customer_ids)) | _any_of("id", sorted(conversation_ids))
    # A common word ("pedido" is in a fifth of a shop's messages): fetching every match to show
    # 25 conversations is the slow way. Walk the list in its order instead, checking each
    # conversation's own few messages, until the page is full. The correlation is a range on
    # purpose: an equality would let the planner turn EXISTS back into "every match, hashed".
    own = Message.objects.alias(doc=MessageDocument(indexed=False)).filter(
        doc=query, conversation_id__gte=OuterRef("pk"), conversation_id__lte=OuterRef("pk")
    )
    return Q(customer_id__in=customers.values("pk")) | Q(Exists(own))


def _estimated_rows(qs: QuerySet[Any]) -> int:
    """The planner's estimate of how many rows ``qs`` returns (from the statistics of the
    expression index: no row is read)."""
    plan = json.loads(qs.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def snippets(text: str, conversations: Iterable[Conversation]) -> dict[int, SafeString]:
    """For each conversation of the page, its latest message matching ``text``, shortened and
    escaped, the searched words in <mark>. One query."""
    found = words(text)
    ids = [conversation.pk for conversation in conversations]
    if not found or not ids:
        return {}
    base = Message.objects.filter(conversation_id__in=ids).exclude(direction=Message.Direction.INTERNAL)
    if is_postgres():
        rows = (
            base.alias(doc=MessageDocument(indexed=False))
            .filter(doc=_tsquery(found, MESSAGE_CONFIG))
            .order_by("conversation_id", "-wa_timestamp", "-id")
            .distinct("conversation_id")
            .values_list("conversation_id", "text", "caption")
        )
    else:
        body = Q()
        for word in found:
            body &= Q(text__icontains=word) | Q(caption__icontains=word)
        rows = base.filter(body).order_by("-wa_timestamp", "-id").values_list("conversation_id", "text", "caption")
    latest: dict[int, SafeString] = {}
    for conversation_id, message_text, caption in rows:
        if conversation_id not in latest:
            latest[conversation_id] = highlight(message_text or caption, found)
    return latest


def _fold(text: str) -> str:
    """Lower case without accents, one character for one (so positions map back)."""
    folded = []
    for char in text:
        bare = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)).lower()
        folded.append(bare if len(bare) == 1 else char)
    return "".join(folded)


def highlight(text: str, found: list[str], width: int = SNIPPET_CHARS) -> SafeString:
    """``text`` around its first searched word, escaped, each word that starts like a searched
    one in <mark>. Done here rather than with ``ts_headline``, which drops whatever looks like
    markup from the customer's text and would show something they did not write."""
    folded = _fold(text)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(_fold(word)) for word in found) + r")\w*")
    spans = [match.span() for match in pattern.finditer(folded)]
    start = max(0, spans[0][0] - width // 4) if spans else 0
    end = min(len(text), start + width)
    parts: list[str] = ["…" if start else ""]
    cursor = start
    for begin, stop in spans:
        if stop > end:
            break
        parts.append(conditional_escape(text[cursor:begin]))
        parts.append(format_html("<mark>{}</mark>", text[begin:stop]))
        cursor = stop
    parts.append(conditional_escape(text[cursor:end]))
    parts.append("…" if end < len(text) else "")
    return mark_safe("".join(parts))  # noqa: S308 - every piece of customer text above is escaped


def visible_matches(base: QuerySet[Conversation], text: str) -> QuerySet[Conversation]:
    condition = matching(text)
    return base if condition is None else base.filter(condition)
