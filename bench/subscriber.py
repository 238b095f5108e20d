"""A live-event subscriber, as the console will be: joins ``inbox-<id>`` on the channel layer
and writes one line per ``message.created`` event as it arrives.

Runs as its own process with the product's settings (``CHANNEL_LAYERS`` from ``REDIS_URL``,
channels-redis), so it sees exactly what a websocket consumer of that inbox would. Each line
is ``<monotonic> <wall clock> <message_id>``; CLOCK_MONOTONIC is the clock the load generator
takes its due times from (``time.perf_counter`` on Linux), so the two compare directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import redis.exceptions


async def listen(inbox_id: int, out: Path) -> None:
    from channels.layers import get_channel_layer

    from conversations.events import inbox_group

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(inbox_group(inbox_id), channel)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    timeouts = 0
    with out.open("a", buffering=1) as lines:
        print("subscriber ready", flush=True)
        stopping = asyncio.create_task(stop.wait())
        while not stop.is_set():
            receiving = asyncio.create_task(layer.receive(channel))
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                break
            try:
                event = receiving.result()
            except redis.exceptions.TimeoutError:
                # channels-redis 4.3 blocks on BZPOPMIN for 5 s and redis-py 8's default socket
                # timeout is also 5 s: an idle receive can time out. Receive again.
                timeouts += 1
                continue
            # Stamp first, then parse: the arrival time is when channels-redis handed it over.
            mono, wall = time.monotonic(), time.time()
            if event.get("type") == "message.created":
                lines.write(f"{mono:.6f} {wall:.6f} {event['message_id']}\n")
    await layer.group_discard(inbox_group(inbox_id), channel)
    print(f"subscriber stopped; idle receives that timed out: {timeouts}", file=sys.stderr, flush=True)


def read(path: Path, offset: int = 0) -> tuple[list[tuple[float, float, int]], int]:
    """Events written since ``offset`` (bytes), and the offset to read from next time."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    complete = data[: data.rfind(b"\n") + 1]
    events = []
    for line in complete.decode().splitlines():
        mono, wall, message_id = line.split()
        events.append((float(mono), float(wall), int(message_id)))
    return events, offset + len(complete)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inbox-id", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    asyncio.run(listen(args.inbox_id, args.out))


if __name__ == "__main__":
    main()
