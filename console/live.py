"""What the console's websocket sends (``console/consumers.py``), rendered in sync code: the
fragments of the pages' own partials, each behind a fresh access check.

Every function here takes the socket's stand-in ``request`` (``request_for``: the user, the
session, the CSRF cookie and the language of the websocket handshake) so the partials render
exactly as they do in a page. The partials of the other console modules are named here only:

- ``console/conversation.html#message`` (context ``message``): one message, ``#message-<id>``,
  inside ``#timeline-messages``; ``#header``: ``#conversation-header``;
- ``console/list.html#row`` (``conversation``): ``#conversation-row-<id>``; ``#counters``:
  ``#console-counters``.

Messages go out wrapped in ``console/live.html#upsert``: the browser (live.js) replaces the
element when it has it and inserts it in id order when it does not, so delivering a message
twice, live and again by a sync, leaves one element. Rows and headers are plain out-of-band
swaps by id (nothing happens where they are not shown); a conversation this user may no longer
see after an ownership change is removed by id (``#gone``: ids only, no customer data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import timezone, translation
from django_htmx.middleware import HtmxDetails

from conversations import access
from conversations.models import Conversation, Message
from handoffs.models import Attendant, OwnershipChange

LIVE = "console/live.html"
CONVERSATION = "console/conversation.html"
LIST = "console/list.html"
TIMELINE_SELECTOR = "#timeline-messages"

# A sync re-sends what changed this long before its cursor: a transaction that wrote a row
# before the cursor was taken and committed after it is still caught. Repeats are harmless.
OVERLAP = timedelta(seconds=30)
# A first sync (no cursor yet: the page was just rendered) looks back this far.
FIRST_LOOK_BACK = timedelta(seconds=60)
# More changes than this in one sync: the page reloads (its list or itself) instead.
SYNC_MESSAGES = 200
SYNC_ROWS = 100
# A console that has not synced for this long counts as closed (see console/presence.py).
SEEN_SECONDS = 90
SEEN_KEY = "console:seen:{}"
DB_SESSIONS = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")
# An assignment older than this is not announced again (a sync after a long disconnection).
TOAST_WITHIN = timedelta(minutes=2)


# --- The socket's request -------------------------------------------------------------------------


def request_for(scope: dict) -> HttpRequest:
    """An ``HttpRequest`` standing for the websocket's handshake, for rendering templates with
    ``request`` and ``{% csrf_token %}`` as a page of the same browser would."""
    from config.middleware import chosen_language

    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = scope.get("path", "/ws/console/")
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:
        cookies = SimpleCookie()
    request.COOKIES = {name: morsel.value for name, morsel in cookies.items()}
    request.META.update(
        {
            "HTTP_HOST": headers.get("host", "localhost"),
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "HTTP_HX_REQUEST": "true",
        }
    )
    secret = request.COOKIES.get(settings.CSRF_COOKIE_NAME)
    if secret:
        request.META["CSRF_COOKIE"] = secret
    request.user = scope.get("user")
    request.session = scope.get("session")
    request.htmx = HtmxDetails(request)
    request.LANGUAGE_CODE = chosen_language(request)
    return request


def _render(name: str, context: dict[str, Any], request: HttpRequest) -> str:
    return render_to_string(name, context, request)


def seen(user_id: int) -> None:
    """This user has a console open and syncing."""
    cache.set(SEEN_KEY.format(user_id), time.time(), SEEN_SECONDS)


def consoles_open(user_ids: list[int]) -> set[int]:
    found = cache.get_many([SEEN_KEY.format(pk) for pk in user_ids])
    return {pk for pk in user_ids if SEEN_KEY.format(pk) in found}


# --- What a socket still has to send --------------------------------------------------------------


@dataclass
class Batch:
    messages: set[int] = field(default_factory=set)
    headers: set[int] = field(default_factory=set)
    assigned: set[int] = field(default_factory=set)
    rows: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)
    counters: bool = False

    def has_list_work(self) -> bool:
        return bool(self.rows or self.counters)

    def __bool__(self) -> bool:
        return bool(self.messages or self.headers or self.assigned or self.rows or self.counters)


class Pending(Batch):
    """Events received and not rendered yet, by kind: a burst of events about one row renders
    it once."""

    def row(self, conversation_id: int, *, gone_if_hidden: bool = False, counters: bool = True) -> None:
        self.rows.add(conversation_id)
        # A new message moves a row, not a count: counters follow opened and updated ones.
        self.counters = self.counters or counters
        if gone_if_hidden:
            self.gone.add(conversation_id)

    def header(self, conversation_id: int) -> None:
        self.headers.add(conversation_id)

    def message(self, message_id: int) -> None:
        self.messages.add(message_id)

    def assign(self, conversation_id: int) -> None:
        self.assigned.add(conversation_id)

    def clear_conversation(self) -> None:
        self.messages.clear()
        self.headers.clear()

    def has_urgent(self) -> bool:
        return bool(self.messages or self.headers or self.assigned)

    def take(self, *, lists: bool) -> Batch:
        batch = Batch(messages=self.messages, headers=self.headers, assigned=self.assigned)
        self.messages, self.headers, self.assigned = set(), set(), set()
        if lists:
            batch.rows, batch.gone, batch.counters = self.rows, self.gone, self.counters
            self.rows, self.gone, self.counters = set(), set(), False
        return batch


# --- Fragments --------------------------------------------------------------------------------------


class SocketAccess:
    """This socket's access rule (``conversations.access``), compiled to SQL once and run fresh
    for every event: the ORM spent ~10 ms building each query on a busy 2-core machine, the
    database under 1 ms answering it, and every event reaches every socket of the inbox. The
    rule is the access module's own queryset, so it cannot drift from it; it is compiled
    again at every sync (``refresh``), which picks up what the compiled shape bakes in (an
    admin flag, a deactivated account). Membership, status and assignee are read by the
    query itself, each time."""

    def __init__(self, user: Any, session_key: str | None = None) -> None:
        self.user = user
        # Logging out deletes the session's row: every statement below also asks that it is
        # still there, so a console logged out elsewhere gets nothing more from the next event
        # on (the sync then closes the socket after the full check, which also covers an idle
        # timeout, a password change and a pending second factor).
        self.session_key = session_key if settings.SESSION_ENGINE in DB_SESSIONS else None
        self.refresh()

    def _session(self) -> tuple[str, list]:
        if self.session_key is None:
            return "", []
        clause = " AND EXISTS (SELECT 1 FROM django_session s WHERE s.session_key = %s AND s.expire_date > %s)"
        return clause, [self.session_key, timezone.now()]

    def refresh(self) -> None:
        self.visible_sql = _compile(access.conversations_for(self.user).values("pk"))
        self.writable_sql = _compile(access.writable_conversations_for(self.user).values("pk"))

    def visible_rows(self, pks: Any) -> dict[int, Any]:
        """The conversations among ``pks`` this user may see, with their ``updated``: one
        statement."""
        pks = [int(pk) for pk in pks]
        if self.visible_sql is None or not pks:
            return {}
        sql, params = self.visible_sql
        marks = ", ".join(["%s"] * len(pks))
        alive, alive_params = self._session()
        statement = (
            "SELECT c.id, c.updated FROM conversations_conversation c "  # noqa: S608 -- placeholders
            f"WHERE c.id IN ({marks}) AND c.id IN ({sql}){alive}"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [*pks, *params, *alive_params])
            return dict(cursor.fetchall())

    def visible_messages(self, conversation_id: int, pks: Any) -> tuple[dict[int, Any], bool]:
        """The messages among ``pks`` of this conversation, if this user may see it, with their
        ``updated``, and whether they may act on it: one statement."""
        pks = [int(pk) for pk in pks]
        if self.visible_sql is None or not pks:
            return {}, False
        sql, params = self.visible_sql
        if self.writable_sql is None:
            writable, writable_params = "FALSE", ()
        else:
            writable, writable_params = f"m.conversation_id IN ({self.writable_sql[0]})", self.writable_sql[1]
        marks = ", ".join(["%s"] * len(pks))
        alive, alive_params = self._session()
        statement = (
            f"SELECT m.id, m.updated, {writable} FROM conversations_message m "  # noqa: S608 -- placeholders
            f"WHERE m.id IN ({marks}) AND m.conversation_id = %s AND m.conversation_id IN ({sql}){alive}"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [*writable_params, *pks, conversation_id, *params, *alive_params])
            rows = cursor.fetchall()
        return {row[0]: row[1] for row in rows}, bool(rows and rows[0][2])


def _compile(queryset: Any) -> tuple[str, tuple] | None:
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return None  # nothing at all (an inactive user)
    return sql, tuple(params)


def socket_access(request: HttpRequest, *, refresh: bool = False) -> SocketAccess:
    found = getattr(request, "live_access", None)
    if found is None:
        session = getattr(request, "session", None)
        found = request.live_access = SocketAccess(request.user, getattr(session, "session_key", None))
    elif refresh:
        found.refresh()
    return found


class _Shared:
    """Fragments rendered once per process and reused by every socket that may see them (the
    access check stays per socket, before the lookup). A message reaches every console that
    has its conversation open, a row every console of its inbox: rendering each once per
    socket cost more than everything else together. Keys hold everything the partial reads
    (the row's and the message's ``updated``, the language, ``can_act``); entries live
    ``SHARED_SECONDS`` so relative times ("2 minutes ago") stay fresh."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[float, str]] = {}

    def has(self, key: tuple) -> bool:
        return self.peek(key) is not None

    def peek(self, key: tuple) -> str | None:
        found = self.entries.get(key)
        return found[1] if found is not None and found[0] > time.monotonic() else None

    def get(self, key: tuple, make: Any) -> str:
        now = time.monotonic()
        found = self.entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        html = make()
        if len(self.entries) > SHARED_MAX:
            self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
            if len(self.entries) > SHARED_MAX:
                self.entries.clear()
        self.entries[key] = (now + SHARED_SECONDS, html)
        return html


_shared = _Shared()
SHARED_SECONDS = 5.0
SHARED_MAX = 4000
# The message partial's forms carry {% csrf_token %}, which is per browser: the shared copy is
# rendered with this stand-in and each socket puts its own token in (never another user's).
CSRF_STAND_IN = "live0csrf0stand0in0token"


def _messages(
    request: HttpRequest,
    conversation: Conversation,
    rows: Any,
    versions: dict[int, Any] | None = None,
    can_act: bool | None = None,
) -> list[str]:
    from django.middleware.csrf import get_token

    from console.timeline import ACTION_TYPES

    out = []
    if can_act is None:
        can_act = access.can_act(request.user, conversation)
    language = translation.get_language()
    token = None
    for message in rows.exclude(type__in=ACTION_TYPES, action_pending=False).select_related(
        "sender", "reply_to", "reply_to__sender"
    ):
        # Saves a query per message for the sender's name and the reply quotes.
        message.conversation = conversation
        if message.reply_to is not None:
            message.reply_to.conversation = conversation

        def make(message: Message = message) -> str:
            context = {"message": message, "can_act": can_act, "csrf_token": CSRF_STAND_IN}
            fragment = _render(f"{CONVERSATION}#message", context, request)
            return _render(
                f"{LIVE}#upsert",
                {"fragment": fragment, "into": TIMELINE_SELECTOR, "conversation_id": conversation.pk},
                request,
            )

        # The version as _updated() read it when given (the raw driver's type), so the lookup
        # in _shared_messages finds what is stored here.
        version = versions.get(message.pk, message.updated) if versions else message.updated
        key = ("message", message.pk, version, language, can_act)
        html = _shared.get(key, make)
        if CSRF_STAND_IN in html:
            token = token or get_token(request)
            html = html.replace(CSRF_STAND_IN, token)
        out.append(html)
    return out


def _header(request: HttpRequest, conversation: Conversation) -> str:
    from console.actions import composer_context
    from console.timeline import header_context, may_see_phone

    context = {
        **composer_context(request, conversation),
        **header_context(conversation),
        "conversation": conversation,
        "phone_full": may_see_phone(request.user, conversation.inbox_id),
        "has_composer": True,
        "can_act": access.can_act(request.user, conversation),
    }
    return _render(f"{CONVERSATION}#header", context, request)


def _rows_of(user: Any, pks: Any) -> dict[int, Conversation]:
    """The conversations among ``pks`` this user may see now, as the list shows them (the
    same preview and labels as ``console/lists.py``)."""
    last = (
        Message.objects.filter(conversation_id=OuterRef("pk"))
        .exclude(direction=Message.Direction.INTERNAL)
        .order_by("-wa_timestamp", "-id")
    )
    rows = (
        access.conversations_for(user)
        .filter(pk__in=pks)
        .annotate(preview=Subquery(last.values("text")[:1]), preview_type=Subquery(last.values("type")[:1]))
        .prefetch_related("labels")
    )
    return {conversation.pk: conversation for conversation in rows}


def _render_row(request: HttpRequest, conversation: Conversation) -> str:
    return _render(f"{LIST}#row", {"conversation": conversation}, request)


def _row(request: HttpRequest, conversation: Conversation) -> str:
    # The row reads nothing of the viewer (the list's own rows are the same for everyone who
    # may see the conversation): shared between sockets.
    key = ("row", conversation.pk, conversation.updated, translation.get_language())
    return _shared.get(key, lambda: _render(f"{LIST}#row", {"conversation": conversation}, request))


def _counters(request: HttpRequest) -> str:
    from console.lists import counters_context

    return _render(f"{LIST}#counters", counters_context(request.user), request)


def _gone(conversation_id: int, request: HttpRequest) -> str:
    return _render(f"{LIVE}#gone", {"element_id": f"conversation-row-{conversation_id}"}, request)


def _toasts(request: HttpRequest, conversations: dict[int, Conversation], ids: set[int]) -> list[str]:
    """ "Ana assigned you a conversation": only when someone else gave it to me, recently."""
    user = request.user
    recent = timezone.now() - TOAST_WITHIN
    changes = _latest_changes([pk for pk in ids if pk in conversations], recent)
    out = []
    sound = None
    for change in changes:
        if change.to_assignee_id != user.pk or change.actor_id == user.pk:
            continue
        if sound is None:
            sound = Attendant.objects.filter(user=user).values_list("sound", flat=True).first()
            sound = True if sound is None else sound
        conversation = conversations[change.conversation_id]
        context = {
            "conversation": conversation,
            "change": change,
            "actor_name": (change.actor.get_full_name() or change.actor.get_username()) if change.actor else "",
            "sound_url": static("console/sounds/assigned.wav") if sound else "",
        }
        toast = _render(f"{LIVE}#toast", context, request)
        out.append(_render(f"{LIVE}#upsert", {"fragment": toast, "into": "#console-toasts"}, request))
    return out


def _latest_changes(conversation_ids: list[int], since: datetime) -> list[OwnershipChange]:
    latest: dict[int, OwnershipChange] = {}
    rows = OwnershipChange.objects.filter(conversation_id__in=conversation_ids, created__gte=since)
    for change in rows.select_related("actor").order_by("-created", "-id"):
        latest.setdefault(change.conversation_id, change)
    return list(latest.values())


def render_batch(request: HttpRequest, open_id: int | None, batch: Batch) -> str:
    """The fragments for a batch of live events, checked against what this user may see now
    (a fresh access query, compiled once: ``SocketAccess``), rendered once per process and
    shared (``_Shared``)."""
    with translation.override(request.LANGUAGE_CODE):
        user = request.user
        language = translation.get_language()
        rules = socket_access(request)
        out: list[str] = []
        if open_id is not None and batch.messages:
            out += _shared_messages(request, rules, open_id, batch.messages, language)
        header = open_id is not None and open_id in batch.headers
        versions = rules.visible_rows(set(batch.rows) | set(batch.assigned) | ({open_id} if header else set()))
        if header and open_id in versions:
            opened = access.conversations_for(user).filter(pk=open_id).first()
            if opened is not None:
                out.append(_header(request, opened))
        if batch.assigned & versions.keys():
            out += _toasts(request, _rows_of(user, batch.assigned & versions.keys()), batch.assigned)
        shown_rows = sorted(pk for pk in batch.rows if pk in versions)
        missing = [pk for pk in shown_rows if not _shared.has(("row", pk, versions[pk], language))]
        fetched = _rows_of(user, missing) if missing else {}
        for pk in sorted(batch.rows):
            if pk in versions:
                key = ("row", pk, versions[pk], language)
                if pk in fetched or _shared.has(key):
                    out.append(_shared.get(key, lambda pk=pk: _render_row(request, fetched[pk])))
            elif pk in batch.gone:
                out.append(_gone(pk, request))
        # Counters only move with a conversation this user sees (or just stopped seeing):
        # an event about someone else's conversation sends nothing at all.
        if batch.counters and (shown_rows or batch.gone & set(batch.rows)):
            out.append(_counters(request))
        return "".join(out)


def _shared_messages(
    request: HttpRequest, rules: SocketAccess, open_id: int, message_ids: set[int], language: str
) -> list[str]:
    versions, can_act = rules.visible_messages(open_id, message_ids)
    keys = {pk: ("message", pk, version, language, can_act) for pk, version in versions.items()}
    if any(not _shared.has(key) for key in keys.values()):
        conversation = access.conversations_for(request.user).filter(pk=open_id).first()
        if conversation is None:
            return []
        # Renders (and shares) the ones not rendered yet; the others come from the copy.
        _messages(
            request,
            conversation,
            Message.objects.filter(conversation=conversation, pk__in=list(keys)),
            versions,
            can_act,
        )
    token = None
    out = []
    for pk in sorted(keys):
        html = _shared.peek(keys[pk])
        if html is None:
            continue  # an applied reaction or edit: shown on its message, not on its own
        if CSRF_STAND_IN in html:
            from django.middleware.csrf import get_token

            token = token or get_token(request)
            html = html.replace(CSRF_STAND_IN, token)
        out.append(html)
    return out


def render_sync(request: HttpRequest, open_id: int | None, *, after: int, since: datetime | None) -> str:
    """Everything a page may have missed: the open conversation's messages newer than ``after``
    or changed since ``since`` (less ``OVERLAP``), its header, the rows of conversations changed
    since, and the counters; first, the cursor for the next sync."""
    now = timezone.now()
    socket_access(request, refresh=True)
    with translation.override(request.LANGUAGE_CODE):
        user = request.user
        start = (since - OVERLAP) if since is not None else (now - FIRST_LOOK_BACK)
        out = [_render(f"{LIVE}#cursor", {"since": f"{now.timestamp():.6f}"}, request)]
        if open_id is not None:
            conversation = access.conversations_for(user).filter(pk=open_id).first()
            if conversation is not None:
                changed = Message.objects.filter(conversation=conversation).filter(
                    pk__gt=after
                ) | Message.objects.filter(conversation=conversation, updated__gte=start)
                if changed.count() > SYNC_MESSAGES:
                    out.append(_render(f"{LIVE}#reload", {"what": "page"}, request))
                    return "".join(out)
                out += _messages(request, conversation, changed.order_by("id"))
                if conversation.updated >= start:
                    out.append(_header(request, conversation))
        mine = access.inboxes_for(user).values("pk")
        changed_rows = list(
            Conversation.objects.filter(inbox_id__in=mine, updated__gte=start)
            .order_by("-updated")
            .values_list("pk", flat=True)[: SYNC_ROWS + 1]
        )
        if len(changed_rows) > SYNC_ROWS:
            out.append(_render(f"{LIVE}#reload", {"what": "list"}, request))
        else:
            visible = _rows_of(user, changed_rows)
            for pk in changed_rows:
                out.append(_row(request, visible[pk]) if pk in visible else _gone(pk, request))
        out.append(_counters(request))
        return "".join(out)


def render_typing(request: HttpRequest, event: dict) -> str:
    """ "Ana is typing…" for the others in a conversation they may still see."""
    if not access.conversations_for(request.user).filter(pk=event["conversation_id"]).exists():
        return ""
    with translation.override(request.LANGUAGE_CODE):
        return _render(
            f"{LIVE}#typing", {"conversation_id": event["conversation_id"], "name": event.get("name", "")}, request
        )
