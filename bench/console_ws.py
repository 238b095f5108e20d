"""Console websocket benchmark: webhook POST to the fragment on attendants' websockets, and
idle websockets one daphne process holds.

    .venv/bin/python -m bench.console_ws                 # about 3 minutes; writes docs/benchmarks.md
    .venv/bin/python -m bench.console_ws --no-doc        # print only

It starts the production setup as bench/run.sh does (each in its own process group, on
127.0.0.1 only): a fresh PostgreSQL database (``atende_bench_ws``), Redis db 13 (flushed),
gunicorn with config/gunicorn.conf.py (the webhook), daphne serving ``config.asgi`` (the
console's websockets), the webhook Celery worker (``-Q webhooks,dispatch``, niced as in
compose.yaml) and ``manage.py listen_webhooks``. Then:

(a) **Latency.** ``--attendants`` attendants (100) of the inbox log in (a session each) and
    open a websocket; attendant *i* has conversation *i mod* ``--customers`` open. Signed
    webhook messages are posted open-loop at each of ``--rates`` (50, 200 msg/s) for
    ``--duration`` seconds, each with a unique text. A delivery is one message fragment (the
    ``console/conversation.html#message`` partial, in its upsert wrapper) arriving on one
    attendant's socket with that text; its latency runs from the request's *due* time (open
    loop: a late send counts against us) to the frame's arrival. Every attendant with that
    conversation open must get it: missing deliveries are counted. The lists' rows and
    counters (at most once a second per socket) are received and counted, not timed.
(b) **Idle sockets.** ``--idle`` (500) more logged-in websockets are opened, one after the
    other, to the same daphne process and left idle (answering daphne's pings); the process's
    resident memory is read from /proc before and after, and the sockets still open after
    ``--idle-hold`` seconds are counted.

The client is a minimal RFC 6455 client on asyncio streams (no extra dependency). Knobs:
``--http-port`` (8110), ``--ws-port`` (8111), ``--db``, ``--pg-url``, ``--redis``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = os.environ.get("PYTHON", str(ROOT / ".venv" / "bin" / "python"))
MARK_START = "<!-- console-ws:start -->"
# BENCH_WS_DUMP=<file>: append every frame the attendants' sockets receive (debugging).
DUMP = os.environ.get("BENCH_WS_DUMP", "")
MARK_END = "<!-- console-ws:end -->"
TEXT = "bench-ws {tag} {index:07d}"
FOUND = re.compile(r"bench-ws (\w+) (\d{7})")
# One message fragment (its row in the list shows the same text as a preview: not counted).
MESSAGE_FRAGMENT = re.compile(r'<li id="message-\d+".*?</li>', re.S)


# --- A minimal websocket client ---------------------------------------------------------------------


class Socket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int, path: str, *, cookie: str, origin: str) -> Socket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\nCookie: {cookie}\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            writer.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        return cls(reader, writer)

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = bytes([0x80 | opcode, 0x80 | length])
        elif length < 65536:
            head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (length // 4 + 1))[:length], "big")).to_bytes(
            length, "big"
        )
        return head + mask + masked

    async def send(self, text: str) -> None:
        self.writer.write(self._frame(0x1, text.encode()))
        await self.writer.drain()

    async def receive(self) -> str | None:
        """The next text message (answering pings on the way); None once closed."""
        parts: list[bytes] = []
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x9:
                self.writer.write(self._frame(0xA, payload))
                continue
            if opcode == 0x8:
                self.closed = True
                return None
            if opcode in (0x1, 0x0, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        self.closed = True
        self.writer.close()


# --- The stack -------------------------------------------------------------------------------------


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="atende-ws-bench."))
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": f"{args.pg_url}/{args.db}",
                "REDIS_URL": args.redis,
                "CHANNELS_PREFIX": "benchws",
                "SECRET_KEY": "bench-" + secrets.token_hex(24),
                "SECURE_SSL_REDIRECT": "false",
                "SECURE_COOKIES": "false",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "OTP_REQUIRED_FOR_STAFF_ROLES": "false",
                "WHATSAPP_PHONE_NUMBER_ID": "109999999999999",
                "WHATSAPP_DISPLAY_NUMBER": "15550000000",
                "WHATSAPP_WABA_ID": "100000000000000",
                "WHATSAPP_ACCESS_TOKEN": "bench-token-" + secrets.token_hex(8),
                "WHATSAPP_APP_SECRET": secrets.token_hex(16),
                "WHATSAPP_VERIFY_TOKEN": "bench-verify-" + secrets.token_hex(8),
                "WHATSAPP_GRAPH_URL": "http://127.0.0.1:9/v23.0",
                "GUNICORN_BIND": f"127.0.0.1:{args.http_port}",
                "GUNICORN_MAX_REQUESTS": "0",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        os.environ.update(self.env)

    def run(self, *command: str) -> None:
        subprocess.run(command, cwd=ROOT, env=self.env, check=True)

    def start(self, name: str, *command: str) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def fresh(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.args.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.args.db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.args.db}"')
        self.run("redis-cli", "-u", self.args.redis, "flushdb")
        self.run(PY, "manage.py", "migrate", "--noinput", "-v0")

    def up(self) -> None:
        args = self.args
        self.start("gunicorn", PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application")
        self.start("daphne", PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(args.ws_port), "config.asgi:application")
        self.start(
            "webhooks",
            "nice",
            "-n",
            "10",
            PY,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "webhooks,dispatch",
            "--hostname",
            "webhooks@%h",
            "--loglevel",
            "WARNING",
        )
        self.start("listener", PY, "manage.py", "listen_webhooks")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.http_port}/health/", timeout=2)
                break
            except Exception:
                time.sleep(0.5)
        time.sleep(3)

    def cpu_s(self, name: str) -> float:
        """CPU time (user + system, all threads) the process has used so far."""
        fields = Path(f"/proc/{self.procs[name].pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self, name: str) -> int:
        status = Path(f"/proc/{self.procs[name].pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def down(self, *, flush: bool = True) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if flush:
            subprocess.run(["redis-cli", "-u", self.args.redis, "flushdb"], capture_output=True, check=False)


LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def _reset_layers() -> None:
    """This process's own layer (the event subscriber) follows CHANNEL_LAYER_BACKEND."""
    from channels.layers import channel_layers
    from django.conf import settings

    settings.CHANNEL_LAYERS["default"]["BACKEND"] = os.environ["CHANNEL_LAYER_BACKEND"]
    channel_layers.backends.clear()


# --- Setting up people and conversations (Django, in this process) ---------------------------------


def setup_people(count: int, prefix: str) -> list[str]:
    """``count`` attendants of the default inbox, each logged in: their session cookies."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from conversations.models import Inbox, Membership

    inbox = Inbox.objects.order_by("pk").first()
    cookies = []
    for n in range(count):
        user = User.objects.create_user(f"{prefix}{n:04d}", first_name=f"Atendente {n}", password=None)
        Membership.objects.get_or_create(user=user, inbox=inbox, defaults={"role": Membership.Role.ATTENDANT})
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


def signed_bodies(tag: str, count: int, customers: int) -> list[tuple[str, bytes]]:
    from bench import payloads

    env = os.environ
    rows = []
    for index in range(count):
        body = payloads.body_for(
            tag=tag,
            index=index,
            phone_number_id=env["WHATSAPP_PHONE_NUMBER_ID"],
            display_number=env["WHATSAPP_DISPLAY_NUMBER"],
            waba_id=env["WHATSAPP_WABA_ID"],
        )
        data = json.loads(body)
        message = data["entry"][0]["changes"][0]["value"]
        customer = str(5511930000000 + index % customers)
        message["contacts"][0]["wa_id"] = customer
        message["contacts"][0]["profile"]["name"] = f"Cliente {index % customers}"
        message["messages"][0]["from"] = customer
        message["messages"][0]["text"]["body"] = TEXT.format(tag=tag, index=index)
        raw = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()
        rows.append((payloads.sign(raw, env["WHATSAPP_APP_SECRET"]), raw))
    return rows


def conversation_ids(customers: int, timeout: float = 60) -> list[int]:
    from conversations.models import Conversation

    deadline = time.monotonic() + timeout
    wanted = [str(5511930000000 + n) for n in range(customers)]
    while time.monotonic() < deadline:
        found = dict(
            Conversation.objects.filter(customer__wa_id__in=wanted, closed__isnull=True).values_list(
                "customer__wa_id", "pk"
            )
        )
        if len(found) == customers:
            return [found[wa_id] for wa_id in wanted]
        time.sleep(0.5)
    raise SystemExit(f"warm-up: only {len(found)} of {customers} conversations opened")


# --- The measurements ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, -(-len(ordered) * p // 100)) - 1] * 1000, 1)


async def latency(args: argparse.Namespace, stack: Stack, cookies: list[str], conversations: list[int]) -> list[dict]:
    from bench import loadgen

    origin = f"http://127.0.0.1:{args.ws_port}"
    sockets = []
    for index, cookie in enumerate(cookies):
        socket = await Socket.open("127.0.0.1", args.ws_port, "/ws/console/", cookie=cookie, origin=origin)
        conversation = conversations[index % len(conversations)]
        await socket.send(json.dumps({"type": "sync", "conversation": conversation, "after": 0, "since": None}))
        while "data-live-cursor" not in (await socket.receive() or "data-live-cursor"):
            pass
        sockets.append((socket, conversation))
    arrivals: list[tuple[float, int, str, int]] = []  # (monotonic, socket index, tag, index)
    other_frames = [0]

    async def read(number: int, socket: Socket) -> None:
        while True:
            try:
                text = await socket.receive()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if text is None:
                return
            now = time.monotonic()
            if DUMP:
                with open(DUMP, "a") as dump:
                    dump.write(f"--- {now:.3f} socket {number}\n{text}\n")
            # A message fragment shows its text twice (the body, and the reply button's preview).
            found = {hit for fragment in MESSAGE_FRAGMENT.findall(text) for hit in FOUND.findall(fragment)}
            for tag, index in found:
                arrivals.append((now, number, tag, int(index)))
            if not found:
                other_frames[0] += 1

    readers = [asyncio.ensure_future(read(n, socket)) for n, (socket, _) in enumerate(sockets)]
    # The live event itself, as a channel-layer subscriber of the inbox sees it (bench/subscriber.py
    # does the same): splits the latency into processing (webhook to event) and the console's
    # part (event to fragment).
    events: dict[int, float] = {}
    stop = asyncio.Event()
    readers.append(asyncio.ensure_future(subscribe(events, stop)))
    results = []
    url = f"http://127.0.0.1:{args.http_port}/webhooks/whatsapp/"
    for rate in args.rates:
        tag = f"r{rate}x{secrets.token_hex(3)}"
        count = int(rate * args.duration)
        rows = signed_bodies(tag, count, len(conversations))
        arrivals.clear()
        other_frames[0] = 0
        outcome: dict = {}

        def drive(rows: list = rows, rate: int = rate, outcome: dict = outcome) -> None:
            outcome.update(loadgen.run(url, rows, rate, args.duration, 10.0))

        thread = threading.Thread(target=drive)
        cpu_before = stack.cpu_s("daphne")
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.drain)
        daphne_cpu = stack.cpu_s("daphne") - cpu_before
        start = outcome["start_monotonic"]
        per_conversation = {}
        for n, (_socket, conversation) in enumerate(sockets):
            per_conversation.setdefault(conversation, []).append(n)
        expected = {}
        for index in outcome["accepted_indexes"]:
            conversation = conversations[index % len(conversations)]
            for n in per_conversation.get(conversation, []):
                expected[(n, index)] = start + index / rate
        got: dict[tuple[int, int], float] = {}
        duplicates = 0
        for arrived, n, found_tag, index in arrivals:
            if found_tag != tag:
                continue
            if (n, index) in got:
                duplicates += 1
                continue
            got[(n, index)] = arrived
        delays = [got[key] - due for key, due in expected.items() if key in got]
        published = await published_at(tag, events)
        to_event = [
            published[index] - (start + index / rate) for index in outcome["accepted_indexes"] if index in published
        ]
        console_part = [got[(n, index)] - published[index] for (n, index) in got if index in published]
        results.append(
            {
                "rate": rate,
                "duration": args.duration,
                "attendants": len(sockets),
                "conversations": len(conversations),
                "sent": outcome["sent"],
                "accepted": outcome["accepted"],
                "webhook_p99_ms": outcome["p99_ms"],
                "deliveries_expected": len(expected),
                "deliveries": len(delays),
                "missing": len(expected) - len(delays),
                "repeated": duplicates,
                "p50_ms": percentile(delays, 50),
                "p95_ms": percentile(delays, 95),
                "p99_ms": percentile(delays, 99),
                "max_ms": percentile(delays, 100),
                "mean_ms": round(statistics.fmean(delays) * 1000, 1) if delays else None,
                "list_frames": other_frames[0],
                "daphne_cpu_s": round(daphne_cpu, 2),
                "daphne_cpu_ms_per_message": round(daphne_cpu * 1000 / max(1, outcome["accepted"]), 1),
                "events": len(to_event),
                "event_p50_ms": percentile(to_event, 50),
                "event_p99_ms": percentile(to_event, 99),
                "console_p50_ms": percentile(console_part, 50),
                "console_p99_ms": percentile(console_part, 99),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    # The subscriber first: channels-redis's core layer can swallow the cancellation of a
    # receive, and its task then never ends (asyncio.run waited for it forever).
    stop.set()
    for reader in readers:
        reader.cancel()
    await asyncio.wait(readers, timeout=10)
    for socket, _ in sockets:
        socket.close()
    await asyncio.sleep(2)
    return results


async def subscribe(events: dict[int, float], stop: asyncio.Event) -> None:
    import redis.exceptions
    from channels.layers import get_channel_layer

    from conversations.events import inbox_group
    from conversations.models import Inbox

    inbox_id = await asyncio.to_thread(lambda: Inbox.objects.order_by("pk").values_list("pk", flat=True).first())
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(inbox_group(inbox_id), channel)
    while not stop.is_set():
        try:
            event = await layer.receive(channel)
        except redis.exceptions.TimeoutError:
            continue  # an idle receive (see bench/subscriber.py)
        if event.get("type") == "message.created":
            events[event["message_id"]] = time.monotonic()


async def published_at(tag: str, events: dict[int, float]) -> dict[int, float]:
    """Request index -> when its message.created reached the subscriber."""
    from conversations.models import Message

    def rows() -> list[tuple[int, str]]:
        return list(Message.objects.filter(text__startswith=f"bench-ws {tag} ").values_list("pk", "text"))

    out = {}
    for pk, text in await asyncio.to_thread(rows):
        found = FOUND.search(text)
        if found and pk in events:
            out[int(found.group(2))] = events[pk]
    return out


async def idle(args: argparse.Namespace, stack: Stack, cookies: list[str]) -> dict:
    origin = f"http://127.0.0.1:{args.ws_port}"
    before = stack.rss_kb("daphne")
    sockets: list[Socket] = []
    keepers: list[asyncio.Future] = []
    refused = 0
    started = time.monotonic()

    async def keep(socket: Socket) -> None:
        while not socket.closed:
            try:
                if await socket.receive() is None:
                    return
            except (asyncio.IncompleteReadError, ConnectionError):
                socket.closed = True
                return

    for cookie in cookies:
        try:
            socket = await Socket.open("127.0.0.1", args.ws_port, "/ws/console/", cookie=cookie, origin=origin)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            refused += 1
            continue
        sockets.append(socket)
        # Answer daphne's pings from the start: opening 500 can take longer than its timeout.
        keepers.append(asyncio.ensure_future(keep(socket)))
    opened_in = time.monotonic() - started
    await asyncio.sleep(args.idle_hold)
    after = stack.rss_kb("daphne")
    # Still answering: a sync on a sample of the sockets gets its cursor back.
    sample = sockets[:: max(1, len(sockets) // 20)]
    for keeper in keepers:
        keeper.cancel()
    answered = 0
    for socket in sample:
        try:
            await socket.send(json.dumps({"type": "sync", "conversation": None}))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = await asyncio.wait_for(socket.receive(), 10)
                if text and "data-live-cursor" in text:
                    answered += 1
                    break
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
    open_count = sum(not socket.closed for socket in sockets)
    for socket in sockets:
        socket.close()
    return {
        "attempted": len(cookies),
        "opened": len(sockets),
        "refused": refused,
        "open_after_hold": open_count,
        "hold_s": args.idle_hold,
        "opened_in_s": round(opened_in, 1),
        "sample_answered": f"{answered}/{len(sample)}",
        "rss_before_mb": round(before / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "kb_per_socket": round((after - before) / max(1, len(sockets)), 1),
    }


# --- The report ------------------------------------------------------------------------------------


def report(latencies: list[dict], held: dict | None, args: argparse.Namespace) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        MARK_START,
        "## Console websockets (bench/console_ws.py)",
        "",
        f"Run {when} on this machine ({os.cpu_count()} cores, shared), production setup: gunicorn (webhook), "
        "daphne (one process, `config.asgi`), the webhook Celery worker and the listener, PostgreSQL and "
        f"channels-redis. {args.attendants} attendants of one inbox connected, attendant *i* with conversation "
        f"*i mod {args.customers}* open; webhook messages spread over those {args.customers} conversations, "
        f"{args.duration:g} s per rate, open loop. A delivery is the message's fragment "
        "(`console/conversation.html#message`) arriving on one attendant's socket; latency runs from the "
        "webhook request's due time. Every socket also gets its list rows and counters (at most once a second).",
        "",
        "| layer | rate (msg/s) | webhooks accepted | deliveries | missing | repeated | p50 (ms) | p95 (ms) | p99 (ms) "
        "| max (ms) | of which webhook to event p50 / p99 (ms) | event to fragment p50 / p99 (ms) | list frames "
        "| daphne CPU (s) / per message (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in latencies:
        lines.append(
            f"| {row['layer']} | {row['rate']} | {row['accepted']}/{row['sent']} "
            f"| {row['deliveries']}/{row['deliveries_expected']} "
            f"| {row['missing']} | {row['repeated']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} "
            f"| {row['max_ms']} | {row['event_p50_ms']} / {row['event_p99_ms']} "
            f"| {row['console_p50_ms']} / {row['console_p99_ms']} | {row['list_frames']} "
            f"| {row['daphne_cpu_s']} / {row['daphne_cpu_ms_per_message']} |"
        )
    lines += [
        "",
        "Target: p99 <= 100 ms at 50 msg/s (200 msg/s reported).",
        "",
        "Layers (`CHANNEL_LAYER_BACKEND`): `pubsub` is channels-redis's `RedisPubSubChannelLayer` (the "
        "default), `core` its `RedisChannelLayer`. With either, daphne subscribes once per inbox and "
        'conversation group for all its sockets (console/fanout.py). "daphne CPU" is the daphne '
        "process's user + system time from the start of the load to the end of the drain, per webhook "
        "message accepted: what the console costs, whatever else the machine is doing.",
        "",
        HOW_IT_DELIVERS,
        "",
        idle_line(held),
        "",
        "Run it with `.venv/bin/python -m bench.console_ws` (needs PostgreSQL and Redis on localhost; "
        "`--help` for the knobs).",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


HOW_IT_DELIVERS = (
    "How a message reaches the consoles: the webhook's `message.created` event is published once "
    "to the inbox's group and once to the conversation's; daphne receives each once (its one "
    "subscription per group) and notes it on each socket in the group (a method call: a set "
    "insertion). The sockets with the conversation open wake at once; their batches are rendered "
    "together in one round on a database thread (console/consumers.py `_Renderer`): one session "
    "check and one access answer for every socket of the round (`conversations.access.who_may_see`, "
    "at most three queries, fresh from the database), each message rendered once and shared. List "
    "rows and counters go at most once a second, on ticks all sockets share (one round a second "
    "for all the lists, counters from one aggregate), and never ahead of a message's fragment. "
    "A round's reads are compiled once per process (`conversations.querycache.CompiledQuery`), "
    "each row and counters fragment is rendered once per round and language, and daphne loads its "
    "templates at start and freezes them out of the garbage collector's walks (config/warmup.py)."
)


def idle_line(held: dict | None) -> str:
    if held is None:
        return "Idle websockets: not measured in this run (`--idle 0`)."
    return (
        f"Idle websockets on one daphne process ({held['layer']} layer): {held['opened']} of "
        f"{held['attempted']} opened "
        f"({held['refused']} refused) in {held['opened_in_s']} s, {held['open_after_hold']} still open after "
        f"{held['hold_s']} s idle (daphne's pings answered), a sync answered on {held['sample_answered']} "
        f"sampled sockets; daphne's resident memory {held['rss_before_mb']} MB before, "
        f"{held['rss_after_mb']} MB after: about {held['kb_per_socket']} KB per socket. Target: 500 per process."
    )


def write_doc(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def run_phase(coroutine: Any) -> Any:
    """``asyncio.run`` without waiting for tasks left behind: a channels-redis receive whose
    cancellation was swallowed (the core layer's, at times) kept asyncio.run waiting forever."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attendants", type=int, default=100)
    parser.add_argument(
        "--layers",
        type=lambda v: v.split(","),
        default=["pubsub", "core"],
        help="channel layers to measure, in order (pubsub: RedisPubSubChannelLayer, the default; core)",
    )
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--rates", type=lambda v: [int(x) for x in v.split(",")], default=[50, 200])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for late fragments")
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--idle-hold", type=float, default=30.0)
    parser.add_argument("--http-port", type=int, default=8110)
    parser.add_argument("--ws-port", type=int, default=8111)
    parser.add_argument("--db", default="atende_bench_ws")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()

    stack = Stack(args)
    try:
        print("== fresh database and Redis", flush=True)
        stack.fresh()
        import django

        sys.path.insert(0, str(ROOT))
        django.setup()
        from conversations.services import ensure_default_inbox

        ensure_default_inbox()
        cookies = setup_people(args.attendants, "bench")
        idle_cookies = setup_people(args.idle, "idle")
        print("== servers", flush=True)
        stack.env["CHANNEL_LAYER_BACKEND"] = os.environ["CHANNEL_LAYER_BACKEND"] = LAYERS[args.layers[0]]
        stack.up()
        from bench import loadgen

        print("== warm-up: one message per conversation", flush=True)
        warm = signed_bodies("warm", args.customers, args.customers)
        loadgen.run(f"http://127.0.0.1:{args.http_port}/webhooks/whatsapp/", warm, 10, args.customers / 10, 10.0)
        conversations = conversation_ids(args.customers)
        latencies = []
        for number, layer in enumerate(args.layers):
            if number:
                # Restart the servers on the next channel layer (the data stays).
                stack.down(flush=False)
                stack.procs.clear()
            stack.env["CHANNEL_LAYER_BACKEND"] = LAYERS[layer]
            os.environ["CHANNEL_LAYER_BACKEND"] = LAYERS[layer]
            _reset_layers()
            if number:
                stack.up()
            print(f"== (a) latency, {layer} layer", flush=True)
            for row in run_phase(latency(args, stack, cookies, conversations)):
                latencies.append({**row, "layer": layer})
        held = None
        if args.idle:
            print(f"== (b) idle sockets ({args.layers[-1]} layer)", flush=True)
            held = run_phase(idle(args, stack, idle_cookies))
            held["layer"] = args.layers[-1]
            print(json.dumps(held), flush=True)
        section = report(latencies, held, args)
        print(section)
        if not args.no_doc:
            write_doc(Path(args.doc), section)
    finally:
        stack.down()


if __name__ == "__main__":
    main()
