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
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
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
# A search whose every word is common walks this many conversations of the list first.
WALK_WINDOW = 2000


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
    """A message's text search document: the stored column ``search_doc``, which PostgreSQL
    computes when the row is written, ``to_tsvector('portuguese_unaccent', text || ' ' ||
    caption)``, and which conv_message_search_doc_idx indexes (migration conversations 0008).
    The column is not a model field (the ORM never loads it), so this names it beside the
    query's own alias of the messages table.

    ``indexed=False`` spells the same document so that it does not match the index
    (``COALESCE``, on a column that is never NULL): for a page's few hundred messages, read by
    conversation, checking each is cheaper than the whole index's matches for a common word.
    """

    output_field = SearchVectorField()

    def __init__(self, *, indexed: bool = True) -> None:
        super().__init__(F("pk"))
        self.indexed = indexed

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        # The primary key's column as this query names it ("U0"."id"), for the table's alias.
        pk_sql, params = compiler.compile(self.source_expressions[0])
        column = pk_sql[: pk_sql.rindex(".")] + '."search_doc"'
        return (column if self.indexed else f"COALESCE({column}, ''::tsvector)"), list(params)


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
    phone = _phone(digits)
    if not is_postgres():
        name = Q()
        body = Q()
        for word in found:
            name &= Q(name__icontains=word)
            body &= Q(text__icontains=word) | Q(caption__icontains=word)
        return Q(customer_id__in=Customer.objects.filter(name | phone).values("pk")) | Q(
            pk__in=Message.objects.filter(body).values("conversation_id")
        )

    customers = _customers(found, phone)
    query = _tsquery(found, MESSAGE_CONFIG)
    messages = Message.objects.alias(doc=MessageDocument()).filter(doc=query)
    if _estimated_rows(messages) <= COMMON_MATCHES:
        # A rare word: the matching customers and messages, from the GIN indexes, are few.
        # Read their ids first (one query): as lists of values the planner fetches exactly
        # those conversations by index and sorts them; as subqueries it guesses their number
        # and scans every visible conversation. The estimate multiplies the words' chances as
        # if they were unrelated, so two words often seen together ("troca tela") can match
        # ten times more than it says: past COMMON_MATCHES, stop reading and walk instead (a
        # UNION ALL, so that the database stops there too).
        found_ids = (
            customers.order_by()
            .annotate(kind=Value(1))
            .values_list("kind", "pk")
            .union(messages.order_by().annotate(kind=Value(2)).values_list("kind", "conversation_id"), all=True)
        )[: COMMON_MATCHES + 1]
        rows = list(found_ids)
        if len(rows) <= COMMON_MATCHES:
            customer_ids: list[int] = []
            conversation_ids: list[int] = []
            for kind, pk in rows:
                (customer_ids if kind == 1 else conversation_ids).append(pk)
            return _any_of("customer_id", sorted(set(customer_ids))) | _any_of("id", sorted(set(conversation_ids)))
    return _walking(found, customers)


def _phone(digits: str) -> Q:
    return Q(phone__contains=digits) if len(digits) >= MIN_PHONE_DIGITS else Q(pk__in=[])


def _customers(found: list[str], phone: Q) -> QuerySet[Customer]:
    return Customer.objects.alias(doc=NameDocument()).filter(Q(doc=_tsquery(found, NAME_CONFIG)) | phone)


def _walking(found: list[str], customers: QuerySet[Customer]) -> Q:
    """The condition for walking a list: a common word ("pedido" is in a fifth of a shop's
    messages) makes fetching every match to show 25 conversations the slow way. Walk the list
    in its order instead, checking each conversation's own few messages (their stored
    documents), until the page is full. The correlation is a range on purpose: an equality
    would let the planner turn EXISTS back into "every match, hashed"."""
    own = Message.objects.alias(doc=MessageDocument(indexed=False)).filter(
        doc=_tsquery(found, MESSAGE_CONFIG), conversation_id__gte=OuterRef("pk"), conversation_id__lte=OuterRef("pk")
    )
    return Q(customer_id__in=customers.values("pk")) | Q(Exists(own))


def _every_word_common(found: list[str]) -> bool:
    """Is each word, on its own, in more than COMMON_MATCHES messages (the planner's estimate)?"""
    for word in found:
        messages = Message.objects.alias(doc=MessageDocument()).filter(doc=_tsquery([word], MESSAGE_CONFIG))
        if _estimated_rows(messages) <= COMMON_MATCHES:
            return False
    return True


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


def page_ids(base: QuerySet[Any], text: str, start: int, count: int, *, short: bool) -> list[int]:
    """The ids of ``count`` conversations from ``start`` of the list ``base`` (its ids, in the
    list's order) that match ``text``. ``short``: the list holds open conversations only (the
    queue, mine, with the bot); otherwise it is newest activity first over the history.

    Several words that are each common ("troca tela") are often common together too, but the
    planner multiplies their chances as if they were unrelated and expects few matches;
    reading them all through the index then costs tens of milliseconds before ``matching``
    gives up. Such a search walks the list instead: a short list whole, a long one over its
    WALK_WINDOW newest conversations first; only when that does not fill the page, and the
    list goes on, is the full search run."""
    found = words(text) if text.strip() else []
    if is_postgres() and len(found) > 1 and _every_word_common(found):
        walk = base.filter(_walking(found, _customers(found, _phone(re.sub(r"\D", "", text)))))
        if short:
            return list(walk[start : start + count])
        # The window's edge as a time, so that the walk stays one index walk in list order
        # that stops as soon as the page is full (newest first puts conversations without a
        # message yet, NULL, before every other).
        edge = list(base.values_list("last_message", flat=True)[WALK_WINDOW - 1 : WALK_WINDOW])
        if not edge:
            return list(walk[start : start + count])
        if edge[0] is not None:
            window = walk.filter(Q(last_message__gte=edge[0]) | Q(last_message__isnull=True))
            ids = list(window[start : start + count])
            if len(ids) == count:
                return ids
    return list(visible_matches(base, text)[start : start + count])
