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

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import timezone, translation
from django_htmx.middleware import HtmxDetails

from console.templatetags.console_tags import attach_open_handoffs
from conversations import access
from conversations.models import Conversation, Message
from conversations.querycache import CompiledQuery
from handoffs.models import Attendant, OwnershipChange

logger = logging.getLogger(__name__)

LIVE = "console/live.html"
CONVERSATION = "console/conversation.html"
LIST = "console/list.html"
TIMELINE_SELECTOR = "#timeline-messages"
# What the message partial reads besides the message (a query per message otherwise).
MESSAGE_JOINS = ("sender", "reply_to", "reply_to__sender")

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

# A round's reads, compiled once per process (conversations/querycache.py): building and
# compiling these querysets cost several times more CPU than running them, and a message
# costs its consoles one round.
_OPEN_CONVERSATIONS = CompiledQuery(
    lambda ids: Conversation.objects.select_related("inbox", "customer", "assignee").filter(pk__in=ids).order_by(),
    [-987654321],
)
_ROUND_MESSAGES = CompiledQuery(
    lambda ids: Message.objects.select_related(*MESSAGE_JOINS).filter(pk__in=ids).order_by(), [-987654321]
)


def _sessions_of(keys: list[str]) -> QuerySet:
    from django.contrib.sessions.models import Session

    return Session.objects.filter(session_key__in=keys).order_by().values_list("session_key", "expire_date")


_SESSIONS = CompiledQuery(_sessions_of, ["\0session"])


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

    def has_urgent(self) -> bool:
        return bool(self.messages or self.headers or self.assigned)

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

    def take(self, *, lists: bool) -> Batch:
        batch = Batch(messages=self.messages, headers=self.headers, assigned=self.assigned)
        self.messages, self.headers, self.assigned = set(), set(), set()
        if lists:
            batch.rows, batch.gone, batch.counters = self.rows, self.gone, self.counters
            self.rows, self.gone, self.counters = set(), set(), False
        return batch


# --- Fragments --------------------------------------------------------------------------------------


class _Shared:
    """Fragments rendered once per process and reused by every socket that may see them (the
    access check stays per socket: a round answers it for all of them first). A message
    reaches every console that has its conversation open, a row every console of its inbox:
    rendering each once per socket cost more than everything else together. Keys hold everything the partial reads
    (the row's and the message's ``updated``, the language, ``can_act``); entries live
    ``SHARED_SECONDS`` so relative times ("2 minutes ago") stay fresh."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[float, str]] = {}
        # Two rounds render side by side (console/consumers.py: messages, lists): the pruning
        # below must not iterate while the other thread inserts.
        self.lock = threading.Lock()

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
        with self.lock:
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
CSRF_MASK_SECONDS = 60.0


def _messages(
    request: HttpRequest,
    conversation: Conversation,
    rows: QuerySet[Message] | list[Message],
    can_act: bool | None = None,
) -> list[str]:
    from console.timeline import ACTION_TYPES

    out = []
    if can_act is None:
        can_act = access.can_act(request.user, conversation)
    language = translation.get_language()
    token = None
    if isinstance(rows, QuerySet):
        rows = rows.select_related(*MESSAGE_JOINS)
    # Applied reactions and edits show on their message, not on their own.
    rows = [message for message in rows if message.type not in ACTION_TYPES or message.action_pending]
    for message in rows:
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

        key = ("message", message.pk, message.updated, language, can_act)
        html = _shared.get(key, make)
        if CSRF_STAND_IN in html:
            token = token or _csrf_token(request)
            html = html.replace(CSRF_STAND_IN, token)
        out.append(html)
    return out


def _csrf_token(request: HttpRequest) -> str:
    """The socket's CSRF token for the forms of the fragments, masked afresh at most every
    ``CSRF_MASK_SECONDS``: ``get_token`` masks it at every call with 32 system-random
    characters, which cost more than rendering the shared fragment for every socket."""
    from django.middleware.csrf import get_token

    now = time.monotonic()
    token, until = getattr(request, "live_csrf_token", (None, 0.0))
    if token is None or now >= until:
        token = get_token(request)
        request.live_csrf_token = (token, now + CSRF_MASK_SECONDS)
    return token


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


def _list_rows(pks: Any) -> dict[int, Conversation]:
    """These conversations as the list shows them (``console.lists.load_rows``: preview,
    labels; and their open handoffs, in one query as the list page does)."""
    from console.lists import load_rows

    rows = load_rows(list(pks))
    attach_open_handoffs(rows)
    return {conversation.pk: conversation for conversation in rows}


def _rows_of(user: Any, pks: Any) -> dict[int, Conversation]:
    """The conversations among ``pks`` this user may see now, as the list shows them."""
    return _list_rows(access.conversations_for(user).filter(pk__in=pks).values_list("pk", flat=True))


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


def _session_key(request: HttpRequest) -> str | None:
    return getattr(getattr(request, "session", None), "session_key", None)


def _alive(requests: list[HttpRequest]) -> set[int]:
    """These sockets (``id`` of their request) whose user is logged in and whose session is
    still there: one query for all. Logging out deletes the session's row, so a console logged
    out elsewhere gets nothing more from the next event on (the sync then closes the socket
    after the full check, which also covers an idle timeout, a password change and a pending
    second factor)."""
    logged_in = [request for request in requests if getattr(request.user, "is_authenticated", False)]
    if settings.SESSION_ENGINE not in DB_SESSIONS:
        return {id(request) for request in logged_in}
    keys = sorted({_session_key(request) for request in logged_in} - {None})
    now = timezone.now()
    living = {key for key, expires in _SESSIONS(keys) if expires > now}
    return {id(request) for request in logged_in if _session_key(request) in living}


class _Round:
    """The data a round of renders shares: read once for every socket of the process."""

    def __init__(self, items: list[tuple[HttpRequest, int | None, Batch]]) -> None:
        wanted: set[int] = set()
        message_ids: set[int] = set()
        opened: set[int] = set()
        for _request, open_id, batch in items:
            wanted |= batch.rows | batch.assigned
            if open_id is not None and (batch.messages or open_id in batch.headers):
                opened.add(open_id)
                message_ids |= batch.messages
        wanted |= opened
        requests = [request for request, _open_id, _batch in items]
        self.sockets_alive = _alive(requests) if wanted else set()
        users = {request.user.pk for request in requests if id(request) in self.sockets_alive}
        # The open conversations, as their fragments need them (and the access rule reads).
        self.conversations: dict[int, Conversation] = {}
        if opened and users:
            self.conversations = {row.pk: row for row in _OPEN_CONVERSATIONS(sorted(opened))}
        # One fresh answer for every (user, conversation) of the round.
        self.audience = access.who_may_see(users, wanted, loaded=self.conversations.values())
        self.messages: dict[int, Message] = {}
        if message_ids and users:
            self.messages = {row.pk: row for row in _ROUND_MESSAGES(sorted(message_ids))}
        self.rows: dict[int, Conversation] = {}
        self.tallies: list | None = None
        # The answer by user: conversation id -> may act on it (absent: may not see it).
        self.visible: dict[int, dict[int, bool]] = {}
        for (user_id, conversation_id), can_act in self.audience.allowed.items():
            self.visible.setdefault(user_id, {})[conversation_id] = can_act
        # Each row's fragment, once per round and language (None: not shown).
        self.row_html: dict[tuple[int, str], str | None] = {}

    def seen_by(self, request: HttpRequest) -> dict[int, bool]:
        """The conversations of the round this socket may see now (-> may act on them): none
        once its session is gone."""
        if id(request) not in self.sockets_alive:
            return {}
        return self.visible.get(request.user.pk, {})

    def row(self, request: HttpRequest, conversation_id: int, language: str) -> str | None:
        """The list row of a conversation the socket may see (rendered once per process and
        version: ``_Shared``), or None when it is gone from the lists."""
        key = (conversation_id, language)
        if key not in self.row_html:
            shared_key = ("row", conversation_id, self.audience.updated[conversation_id], language)
            html = _shared.peek(shared_key)
            if html is None:
                found = self.list_rows([conversation_id]).get(conversation_id)
                if found is not None:
                    html = _shared.get(shared_key, lambda: _render_row(request, found))
            self.row_html[key] = html
        return self.row_html[key]

    def counters(self, request: HttpRequest) -> str:
        """The counters partial for this socket's user, from one aggregate per round for all
        the round's users (``console.lists.live_tallies``), not one per socket."""
        from console.lists import counters_from_tallies, live_tallies

        if self.tallies is None:
            audience = self.audience
            inboxes = None if audience.admins else {pk for roles in audience.roles.values() for pk in roles}
            self.tallies = live_tallies(inboxes)
        user_id = request.user.pk
        context = counters_from_tallies(
            self.tallies,
            user_id,
            admin=user_id in self.audience.admins,
            roles=self.audience.roles.get(user_id, {}),
        )
        # The partial reads only the counts (and the language): users with the same counts
        # share one render.
        counts = tuple((counter["view"], counter["count"]) for counter in context["counters"])
        key = ("counters", counts, translation.get_language())
        return _shared.get(key, lambda: _render(f"{LIST}#counters", context, request))

    def list_rows(self, pks: list[int]) -> dict[int, Conversation]:
        missing = [pk for pk in pks if pk not in self.rows]
        if missing:
            self.rows.update(_list_rows(missing))
        return {pk: self.rows[pk] for pk in pks if pk in self.rows}


def render_batches(items: list[tuple[HttpRequest, int | None, Batch]]) -> list[str]:
    """The fragments for the live events of every socket of this process that has some: one
    access answer for all of them (``access.who_may_see``, fresh from the database), each
    fragment rendered once and shared (``_Shared``), then each socket's own part (its CSRF
    token, its counters, its header). One socket's failure leaves the others' output alone."""
    round_ = _Round(items)
    # Every row some socket will show and no socket has rendered yet: one fetch for all.
    shown: set[tuple[int, str]] = set()
    for request, _open_id, batch in items:
        if batch.rows:
            language = _language_of(request)
            shown |= {(pk, language) for pk in batch.rows & round_.seen_by(request).keys()}
    updated = round_.audience.updated
    unrendered = {pk for pk, language in shown if not _shared.has(("row", pk, updated[pk], language))}
    if unrendered:
        round_.list_rows(sorted(unrendered))
    out = []
    for request, open_id, batch in items:
        try:
            out.append(_render_one(round_, request, open_id, batch))
        except Exception:
            # One fragment that fails to render must not end the console's socket; the next
            # sync sends it again.
            logger.exception("could not render live fragments for user %s", request.user.pk)
            out.append("")
    return out


def render_batch(request: HttpRequest, open_id: int | None, batch: Batch) -> str:
    """One socket's batch (``render_batches`` of one)."""
    return render_batches([(request, open_id, batch)])[0]


def _language_of(request: HttpRequest) -> str:
    """The socket's language as ``translation.get_language`` names it (read once per socket)."""
    language = getattr(request, "live_language", None)
    if language is None:
        with translation.override(request.LANGUAGE_CODE):
            language = request.live_language = translation.get_language()
    return language


def _render_one(round_: _Round, request: HttpRequest, open_id: int | None, batch: Batch) -> str:
    language = _language_of(request)
    visible = round_.seen_by(request)
    with translation.override(request.LANGUAGE_CODE):
        out: list[str] = []
        if open_id is not None and open_id in visible:
            if batch.messages:
                out += _shared_messages(round_, request, open_id, batch.messages, language, can_act=visible[open_id])
            opened = round_.conversations.get(open_id)
            if open_id in batch.headers and opened is not None:
                out.append(_header(request, opened))
        assigned = {pk for pk in batch.assigned if pk in visible}
        if assigned:
            out += _toasts(request, round_.list_rows(sorted(assigned)), assigned)
        for pk in sorted(batch.rows):
            if pk in visible:
                html = round_.row(request, pk, language)
                if html is not None:
                    out.append(html)
            elif pk in batch.gone:
                out.append(_gone(pk, request))
        # Counters only move with a conversation this user sees (or just stopped seeing):
        # an event about someone else's conversation sends nothing at all.
        sees_one = any(pk in visible for pk in batch.rows)
        if batch.counters and (sees_one or batch.gone & batch.rows) and id(request) in round_.sockets_alive:
            out.append(round_.counters(request))
        return "".join(out)


def _shared_messages(
    round_: _Round, request: HttpRequest, open_id: int, message_ids: set[int], language: str, *, can_act: bool
) -> list[str]:
    mine = [round_.messages[pk] for pk in message_ids if pk in round_.messages]
    mine = [message for message in mine if message.conversation_id == open_id]
    keys = {message.pk: ("message", message.pk, message.updated, language, can_act) for message in mine}
    if any(not _shared.has(key) for key in keys.values()):
        conversation = round_.conversations.get(open_id)
        if conversation is None:
            return []
        # Renders (and shares) the ones not rendered yet; the others come from the copy.
        _messages(request, conversation, [m for m in mine if not _shared.has(keys[m.pk])], can_act=can_act)
    token = None
    out = []
    for pk in sorted(keys):
        html = _shared.peek(keys[pk])
        if html is None:
            continue  # an applied reaction or edit: shown on its message, not on its own
        if CSRF_STAND_IN in html:
            token = token or _csrf_token(request)
            html = html.replace(CSRF_STAND_IN, token)
        out.append(html)
    return out


def render_sync(request: HttpRequest, open_id: int | None, *, after: int, since: datetime | None) -> str:
    """Everything a page may have missed: the open conversation's messages newer than ``after``
    or changed since ``since`` (less ``OVERLAP``), its header, the rows of conversations changed
    since, and the counters; first, the cursor for the next sync."""
    now = timezone.now()
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
