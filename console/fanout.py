"""One subscription per process to each busy group, fanned out to the process's sockets.

An inbox's events reach every console of the inbox: with a channel per socket in the group,
each event was one channel-layer message per socket (one Redis message each with channels-redis's
default layer) and, in the process, one task wake-up and dispatch per socket, about 4 ms of
CPU per webhook message with 100 consoles open. Here each process joins the group once, with a
channel of its own per group (so it knows which group an event came from), and hands the event
to its sockets in the group with a plain method call (``ConsoleConsumer.deliver``), which only
notes what to render: the renders themselves run once per process and round
(``console.consumers._Renderer``), behind a fresh access check.

Used for the ``inbox-<id>`` and ``conversation-<id>`` groups (``FANNED_OUT``); a user's own and
the presence groups, with few events, stay on the socket's channel. Nothing here decides who
sees what: a socket is added to a group exactly when it would have joined it itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

FANNED_OUT = ("inbox-", "conversation-")
# channels-redis forgets a group membership after its group_expiry (a day by default): every
# group this process holds is joined again this often.
REJOIN_SECONDS = 3600.0
# After a failed receive (Redis restarting), try again after this long.
RETRY_SECONDS = 1.0


class Member(Protocol):
    def deliver(self, event: dict) -> None: ...


def fanned_out(group: str) -> bool:
    return group.startswith(FANNED_OUT)


@dataclass(eq=False)
class _Group:
    members: set[Any] = field(default_factory=set)
    channel: str | None = None
    task: asyncio.Task | None = None
    joined_at: float = 0.0


class Fanout:
    """The groups this process (this event loop) listens to on behalf of its sockets."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.groups: dict[str, _Group] = {}

    async def join(self, group: str, member: Member) -> None:
        entry = self.groups.get(group)
        if entry is not None:
            entry.members.add(member)
            return
        entry = self.groups[group] = _Group(members={member})
        try:
            channel = await self.layer.new_channel()
            await self.layer.group_add(group, channel)
        except BaseException:
            # Redis unreachable: the socket fails to join as it would have on its own, and the
            # next socket (or this one reconnecting) tries again.
            if self.groups.get(group) is entry:
                del self.groups[group]
            raise
        entry.channel, entry.joined_at = channel, time.monotonic()
        if self.groups.get(group) is not entry:
            # Everyone left while this process was joining.
            await self.layer.group_discard(group, channel)
            return
        entry.task = asyncio.ensure_future(self._receive(group, entry))

    async def rejoin_stale(self) -> None:
        """Join again the groups joined more than ``REJOIN_SECONDS`` ago (the sockets call this
        at every sync): the core layer forgets a membership after its ``group_expiry``."""
        now = time.monotonic()
        for group, entry in list(self.groups.items()):
            if entry.channel is not None and now - entry.joined_at > REJOIN_SECONDS:
                entry.joined_at = now
                await self.layer.group_add(group, entry.channel)

    async def leave(self, group: str, member: Member) -> None:
        entry = self.groups.get(group)
        if entry is None:
            return
        entry.members.discard(member)
        if entry.members:
            return
        del self.groups[group]
        if entry.task is not None:
            entry.task.cancel()
        if entry.channel is not None:
            await self.layer.group_discard(group, entry.channel)

    async def _receive(self, group: str, entry: _Group) -> None:
        while True:
            try:
                event = await self.layer.receive(entry.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # An idle read timing out, Redis restarting: the sockets' next sync repairs
                # whatever was lost meanwhile.
                logger.debug("receive on %s failed", group, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for member in list(entry.members):
                try:
                    member.deliver(event)
                except Exception:
                    logger.exception("could not deliver %s to a socket", event.get("type"))

    def close(self) -> None:
        for entry in self.groups.values():
            if entry.task is not None:
                entry.task.cancel()
        self.groups.clear()


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def fanout_for(layer: Any) -> Fanout:
    """This event loop's fanout on ``layer`` (a new one when the layer was replaced: tests)."""
    loop = asyncio.get_running_loop()
    found = _fanouts.get(loop)
    if found is None or found.layer is not layer:
        if found is not None:
            found.close()
        found = _fanouts[loop] = Fanout(layer)
    return found
