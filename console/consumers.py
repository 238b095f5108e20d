"""The console's websocket: one per logged-in user, at ``/ws/console/``.

It forwards the live events of ``conversations/events.py`` (ids only) as server-rendered
fragments, from the same template partials the pages use, swapped by element id by the htmx
``ws`` extension (``static/console/js/live.js``):

- the open conversation's messages (``console/conversation.html#message``) and header
  (``#header``), wrapped so the browser inserts a new message or replaces one it already has
  (``console/live.html#upsert``): a duplicate changes nothing;
- the rows of the lists (``console/list.html#row``) and the counters (``#counters``);
- a toast, a desktop notification and a sound when someone assigns me a conversation; another
  attendant typing in the open conversation; presence (``console/presence.py``).

**Who sees what.** The socket joins ``inbox-<id>`` for the inboxes the user works in, the
user's own ``user-<id>``, ``presence-<id>`` for the inboxes they supervise, and the open
conversation's ``conversation-<id>`` once the access module allows it (the inbox and
conversation groups through the process's one subscription per group: ``console/fanout.py``).
Being in a group is never enough: every batch of fragments is checked against what the user
may see *now*, read fresh from the database when it renders (``access.who_may_see``, the rules
of ``conversations.access`` for every socket of the round at once), with the socket's session
still alive (access revoked or a logout elsewhere stops delivery at the next event).

**No gaps, no duplicates.** Live events are a convenience: a Redis restart loses some while the
rows are committed. The page therefore asks for a *sync* on every (re)connect and every ~25 s
(``SYNC_SECONDS`` in live.js), with the cursor the server gave it last: the server answers with
every message of the open conversation newer than what the page holds or changed since the
cursor, the rows changed since, and the counters. Element ids make every swap idempotent, so
the overlap (``OVERLAP``) that covers transactions committing late only repeats, never loses.

**Cost.** An inbox's events reach every member's socket: each event costs a socket a method
call that notes what to render. Sockets' batches render together in rounds (``_Renderer``):
one session check, one access answer and one counters aggregate per round for all of them,
each fragment rendered once per process. The open conversation's messages go at once (and
before any list rows waiting for the same round); list rows and counters at most once per
``LIST_INTERVAL``, on ticks all sockets share, so a burst of messages costs the process one
list round a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import weakref
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from console import fanout, live, presence
from conversations import access
from conversations.events import conversation_group, inbox_group
from handoffs.services import presence_group, user_group

logger = logging.getLogger(__name__)

# The open conversation's fragments wait this long for the same event's copy from its other
# group (message.created and conversation.updated go to the inbox and the conversation groups).
MESSAGE_DELAY = 0.002
# Rows and counters of the lists: at most one refresh per socket per this many seconds.
LIST_INTERVAL = 1.0
# Typing from one socket is forwarded at most this often (the composer throttles too).
TYPING_INTERVAL = 2.0
# message.created and conversation.updated are published to the inbox's group and to the
# conversation's: the second copy is recognised among the last RECENT_EVENTS events (an
# identical conversation.updated within COPY_SECONDS). Dropping a real repeat costs nothing
# the next sync does not repair; rendering every copy would double the socket's work.
RECENT_EVENTS = 512
COPY_SECONDS = 2.0
# Live rounds run in the default thread pool, off the thread the syncs use, with a connection of
# their own (tests set True: one connection, closed with the test database).
RENDER_THREAD_SENSITIVE = False
# Events that only note what to render (plain methods, no await: see deliver) ...
NOTED_EVENTS = {
    "conversation.opened": "conversation_opened",
    "conversation.updated": "conversation_updated",
    "message.created": "message_created",
    "message.updated": "message_updated",
}
# ... and the ones rendered as they come.
LAYER_EVENTS = {
    "console.typing": "console_typing",
    "presence.changed": "presence_changed",
}
# A refused handshake; anonymous, inactive, idle-expired or second factor pending.
REFUSED = 4403


class ConsoleConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.conversation_id: int | None = None
        self.joined: set[str] = set()
        self.pending = live.Pending()
        self.wake = asyncio.Event()
        self.flusher: asyncio.Task | None = None
        self.last_list_flush = 0.0
        self.list_timer: asyncio.TimerHandle | None = None
        self.lists_due = False
        self.tasks: set[asyncio.Future] = set()
        self.last_typing = 0.0
        self.recent: OrderedDict[tuple, float] = OrderedDict()
        if not await database_sync_to_async(_may_connect)(self.user, self.scope.get("session")):
            await self.close(code=REFUSED)
            return
        self.request = live.request_for(self.scope)
        groups, _open = await database_sync_to_async(_groups_for)(self.user)
        await self._join(groups)
        await self.accept()
        self.flusher = asyncio.ensure_future(self._flush_forever())
        await database_sync_to_async(live.seen)(self.user.pk)

    async def disconnect(self, code: int) -> None:
        if self.flusher is not None:
            self.flusher.cancel()
        if self.list_timer is not None:
            self.list_timer.cancel()
        for task in list(self.tasks):
            task.cancel()
        for group in list(self.joined):
            await self._leave(group)
        self.joined = set()
        # A closed socket is a page navigation as often as a closed tab: presence stays what
        # the user set (console/presence.py explains what supervisors see instead).

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler, a hop to the
        # database thread per event per socket; the layer's events touch the database only
        # through database_sync_to_async, which does that itself.
        if message["type"] in NOTED_EVENTS:
            getattr(self, NOTED_EVENTS[message["type"]])(message)
        elif message["type"] in LAYER_EVENTS:
            await getattr(self, LAYER_EVENTS[message["type"]])(message)
        else:
            await super().dispatch(message)

    def deliver(self, event: dict) -> None:
        """An event of an inbox or conversation group, from this process's one subscription to
        it (``console/fanout.py``): noted at once, or rendered in a task of its own."""
        if event["type"] in NOTED_EVENTS:
            getattr(self, NOTED_EVENTS[event["type"]])(event)
        elif event["type"] in LAYER_EVENTS:
            task = asyncio.ensure_future(getattr(self, LAYER_EVENTS[event["type"]])(event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    # --- From the browser ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "sync":
            await self._catch_up(data)
        elif kind == "typing":
            await self._typing()

    async def _catch_up(self, data: dict) -> None:
        """Subscribe to the conversation the page shows (when this user may see it) and send
        what the page may have missed since its cursor."""
        if not await database_sync_to_async(_session_current)(self.user, self.scope.get("session")):
            # Logged out elsewhere, idle past the timeout, password changed: this console is over.
            await self.close(code=REFUSED)
            return
        wanted = _int(data.get("conversation"))
        groups, allowed = await database_sync_to_async(_groups_for)(self.user, wanted)
        await self._join(groups)
        if allowed != self.conversation_id:
            self.pending.clear_conversation()
        self.conversation_id = allowed
        html = await database_sync_to_async(live.render_sync)(
            self.request, allowed, after=_int(data.get("after")) or 0, since=_time(data.get("since"))
        )
        await self.send(text_data=html)
        await database_sync_to_async(live.seen)(self.user.pk)

    async def _typing(self) -> None:
        now = time.monotonic()
        if self.conversation_id is None or now - self.last_typing < TYPING_INTERVAL:
            return
        self.last_typing = now
        await self.channel_layer.group_send(
            conversation_group(self.conversation_id),
            {
                "type": "console.typing",
                "conversation_id": self.conversation_id,
                "user_id": self.user.pk,
                "name": self.user.get_full_name() or self.user.get_username(),
            },
        )

    async def _join(self, groups: set[str]) -> None:
        for group in self.joined - groups:
            await self._leave(group)
        for group in groups - self.joined:
            if fanout.fanned_out(group):
                await fanout.fanout_for(self.channel_layer).join(group, self)
            else:
                await self.channel_layer.group_add(group, self.channel_name)
        self.joined = set(groups)
        await fanout.fanout_for(self.channel_layer).rejoin_stale()

    async def _leave(self, group: str) -> None:
        if fanout.fanned_out(group):
            await fanout.fanout_for(self.channel_layer).leave(group, self)
        else:
            await self.channel_layer.group_discard(group, self.channel_name)

    # --- From the channel layer (ids only; rendered after a fresh access check) --------------

    def conversation_opened(self, event: dict) -> None:
        self.pending.row(event["conversation_id"])
        self._changed()

    def conversation_updated(self, event: dict) -> None:
        conversation_id = event["conversation_id"]
        if self._copy((conversation_id, event.get("status"), event.get("assignee_id")), COPY_SECONDS):
            return
        self.pending.row(conversation_id, gone_if_hidden=True)
        if conversation_id == self.conversation_id:
            self.pending.header(conversation_id)
        if event.get("assignee_id") == self.user.pk:
            self.pending.assign(conversation_id)
        self._changed()

    def message_created(self, event: dict) -> None:
        conversation_id = event["conversation_id"]
        # A message is created once: a second event for it is its copy from the other group.
        if self._copy(("message", event["message_id"]), None):
            return
        self.pending.row(conversation_id, counters=False)
        if conversation_id == self.conversation_id:
            self.pending.message(event["message_id"])
        self._changed()

    def message_updated(self, event: dict) -> None:
        if event["conversation_id"] == self.conversation_id:
            self.pending.message(event["message_id"])
            self._changed()

    async def console_typing(self, event: dict) -> None:
        if event["user_id"] == self.user.pk or event["conversation_id"] != self.conversation_id:
            return
        html = await database_sync_to_async(live.render_typing)(self.request, event)
        if html:
            await self.send(text_data=html)

    async def presence_changed(self, event: dict) -> None:
        html = await database_sync_to_async(presence.render_event)(self.request, event)
        if html:
            await self.send(text_data=html)

    def _copy(self, key: tuple, within: float | None) -> bool:
        """Was this event already received (from the other group it is published to)?"""
        now = time.monotonic()
        seen = self.recent.get(key)
        self.recent[key] = now
        self.recent.move_to_end(key)
        while len(self.recent) > RECENT_EVENTS:
            self.recent.popitem(last=False)
        return seen is not None and (within is None or now - seen < within)

    # --- Rendering ----------------------------------------------------------------------------

    def _changed(self) -> None:
        """An event added work: the open conversation's fragments (and toasts) go now, list
        rows and counters at the process's next list tick."""
        if self.pending.has_urgent():
            self.wake.set()
        elif self.pending.has_list_work():
            self._arm_lists()

    def _arm_lists(self) -> None:
        if self.list_timer is None and not self.lists_due:
            loop = asyncio.get_running_loop()
            self.list_timer = loop.call_at(_list_tick(loop.time(), self.last_list_flush), self._lists_ready)

    def _lists_ready(self) -> None:
        self.list_timer = None
        self.lists_due = True
        self.wake.set()

    async def _flush_forever(self) -> None:
        """Render what the events asked for: the open conversation's fragments at once (after
        ``MESSAGE_DELAY``, so an event's two copies render once), list rows and counters at
        most once per ``LIST_INTERVAL``, on ticks every socket of the process shares (so they
        render in one round: ``_Renderer``). A list-only event costs a socket a set insertion,
        no wake-up."""
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(MESSAGE_DELAY)
            lists, self.lists_due = self.lists_due, False
            batch = self.pending.take(lists=lists)
            if lists:
                self.last_list_flush = loop.time()
            if batch:
                await self._send_batch(batch)
            # Urgent work that came meanwhile has set the wake; list work waits for its tick.
            if self.pending.has_list_work():
                self._arm_lists()

    async def _send_batch(self, batch: live.Batch) -> None:
        html = await _renderer(batch.has_urgent()).render(self.request, self.conversation_id, batch)
        if html:
            await self.send(text_data=html)


class _Renderer:
    """Renders the batches of every socket of this process (of this event loop) together: an
    event reaches all the consoles of its inbox at once, and each wakes up wanting the same
    rows and messages. Batches queue here while a round runs; the next round takes them all,
    in one trip to a database thread: one access answer for every socket
    (``access.who_may_see``), each fragment rendered once (``live.render_batches``).

    Two of them per process, side by side (``_renderer``): one for batches with the open
    conversation's fragments (a message, a header, a toast), one for list rows and counters
    only, so a message never waits for a list tick's round of every socket."""

    def __init__(self) -> None:
        self.queue: list[tuple[Any, int | None, live.Batch, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def render(self, request: Any, open_id: int | None, batch: live.Batch) -> str:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((request, open_id, batch, future))
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._rounds())
        return await future

    async def _rounds(self) -> None:
        while self.queue:
            # The other sockets woken by the same event join this round.
            await asyncio.sleep(0)
            items, self.queue = self.queue, []
            try:
                # Off the shared thread: a round does not wait behind a socket's sync.
                results = await database_sync_to_async(live.render_batches, thread_sensitive=RENDER_THREAD_SENSITIVE)(
                    [(request, open_id, batch) for request, open_id, batch, _future in items]
                )
            except Exception:
                # The sockets stay open; the next sync sends what this round could not.
                logger.exception("could not render a round of live fragments")
                results = [""] * len(items)
            for (_request, _open_id, _batch, future), html in zip(items, results, strict=True):
                if not future.done():  # a socket closed meanwhile
                    future.set_result(html)


_renderers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, _Renderer]] = weakref.WeakKeyDictionary()


def _renderer(urgent: bool) -> _Renderer:
    """This event loop's renderer for batches with the open conversation's fragments
    (``urgent``), or for list rows and counters only."""
    lanes = _renderers.setdefault(asyncio.get_running_loop(), {})
    found = lanes.get(urgent)
    if found is None:
        found = lanes[urgent] = _Renderer()
    return found


# --- Sync helpers (database) ---------------------------------------------------------------------


def _may_connect(user: Any, session: Any) -> bool:
    from config.security import session_is_usable

    return session_is_usable(user, session)


def _session_current(user: Any, session: Any) -> bool:
    from config.security import session_is_current

    return session_is_current(user, session)


def _groups_for(user: Any, conversation_id: int | None = None) -> tuple[set[str], int | None]:
    """The groups this user's socket belongs in right now (fresh queries), and the open
    conversation's id when they may see it (None otherwise)."""
    inbox_ids = set(access.inboxes_for(user).values_list("pk", flat=True))
    if access.is_admin(user):
        supervised = inbox_ids
    else:
        supervised = set(access.supervised_inbox_ids(user).values_list("inbox_id", flat=True))
    groups = {inbox_group(pk) for pk in inbox_ids} | {presence_group(pk) for pk in supervised} | {user_group(user.pk)}
    if conversation_id is not None and access.conversations_for(user).filter(pk=conversation_id).exists():
        groups.add(conversation_group(conversation_id))
        return groups, conversation_id
    return groups, None


def _list_tick(now: float, last_flush: float) -> float:
    """The next list tick (event-loop time) at least ``LIST_INTERVAL`` after this socket's
    last list flush: a multiple of ``LIST_INTERVAL``, the same for every socket."""
    earliest = max(now, last_flush + LIST_INTERVAL)
    if LIST_INTERVAL <= 0:
        return earliest
    return math.ceil(earliest / LIST_INTERVAL) * LIST_INTERVAL


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _time(value: Any) -> datetime | None:
    """The cursor the server gave the page (epoch seconds), as a datetime."""
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    now = timezone.now()
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    # A cursor from the future (forged, or another server's clock) would skip what is coming;
    # one older than a day asks for too much: the first-sync window is used instead.
    if when < now - timedelta(days=1):
        return None
    return min(when, now)
