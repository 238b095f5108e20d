"""The demo's WhatsApp network: what the Graph API stand-in holds, and the courier that reports
back to the business through its real, signed webhook.

Everything lives in this process's memory. The embedded mode is one process (``runserver``),
and nothing here may write to the database: the stand-in answers requests made by our own code,
sometimes while that code is between two transactions on the same SQLite file. What the phone
shows comes from the database (read only) plus the files kept here, so a restart loses only the
demo's media bytes and which messages were already reported as read.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from conversations.whatsapp.signature import sign

logger = logging.getLogger(__name__)

# Bounds, so a demo left running for days does not grow without limit.
MAX_SENT = 5000
MAX_MEDIA_BYTES = 256 * 1024 * 1024
# WhatsApp clears a typing indicator after 25 seconds (or when the business replies).
TYPING_SECONDS = 25.0
# Meta's status webhooks come a moment after the send's answer; the same here, so the console
# sees the ticks move one by one rather than all at once.
STATUS_DELAY = 0.3
COURIER_ATTEMPTS = 4


def new_wamid() -> str:
    """An id shaped like Meta's (``wamid.`` + base64 of its internal key)."""
    return "wamid.HBgM" + base64.b32encode(secrets.token_bytes(25)).decode().rstrip("=")


def new_media_id() -> str:
    """Meta's media ids are 15-16 digit numbers."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


def digits(value: str) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


@dataclass
class Sent:
    """A message the business sent through the stand-in."""

    wamid: str
    phone_number_id: str
    to: str
    type: str
    body: dict[str, Any]
    at: datetime
    webhook_url: str
    read_reported: bool = False

    @property
    def callback_data(self) -> str:
        return str(self.body.get("biz_opaque_callback_data") or "")


@dataclass
class Media:
    id: str
    content: bytes
    mime_type: str
    filename: str = ""
    sha256_hex: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256_hex = hashlib.sha256(self.content).hexdigest()

    @property
    def sha256_b64(self) -> str:
        """Webhooks give the file's SHA-256 in base64 (the media API in hex)."""
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


class Network:
    """The stand-in's memory. Thread-safe: runserver answers each request in its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.sent: OrderedDict[str, Sent] = OrderedDict()
            self.media: OrderedDict[str, Media] = OrderedDict()
            self._media_bytes = 0
            # wamids of customer messages the business marked as read.
            self.read_marks: set[str] = set()
            self._typing: dict[tuple[str, str], float] = {}

    # --- the business's side (Graph API calls) --------------------------------------------

    def record_send(self, sent: Sent) -> None:
        with self._lock:
            self.sent[sent.wamid] = sent
            while len(self.sent) > MAX_SENT:
                self.sent.popitem(last=False)
            # Replying clears the typing indicator, as on WhatsApp.
            self._typing.pop((sent.phone_number_id, sent.to), None)

    def mark_read(self, wamid: str, *, phone_number_id: str = "", wa_id: str = "", typing: bool = False) -> None:
        with self._lock:
            self.read_marks.add(wamid)
            if typing and wa_id:
                self._typing[(phone_number_id, wa_id)] = time.monotonic() + TYPING_SECONDS

    def is_typing(self, phone_number_id: str, wa_id: str) -> bool:
        with self._lock:
            until = self._typing.get((phone_number_id, wa_id))
        return until is not None and until > time.monotonic()

    def add_media(self, media: Media) -> Media:
        with self._lock:
            self.media[media.id] = media
            self._media_bytes += len(media.content)
            while self._media_bytes > MAX_MEDIA_BYTES and len(self.media) > 1:
                _, old = self.media.popitem(last=False)
                self._media_bytes -= len(old.content)
        return media

    def get_media(self, media_id: str) -> Media | None:
        with self._lock:
            return self.media.get(media_id)

    def get_sent(self, wamid: str) -> Sent | None:
        with self._lock:
            return self.sent.get(wamid)

    def sends_to(self, wa_id: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent.values() if s.to == wa_id]

    def take_unread(self, wamids: list[str]) -> list[Sent]:
        """The business messages among ``wamids`` not yet reported read; marks them reported."""
        taken = []
        with self._lock:
            for wamid in wamids:
                sent = self.sent.get(wamid)
                if sent is not None and not sent.read_reported and sent.type != "reaction":
                    sent.read_reported = True
                    taken.append(sent)
        return taken


@dataclass
class _Delivery:
    url: str
    body: bytes
    signature: str
    not_before: float


class Courier:
    """Posts webhook bodies to the business one at a time, in the order they were handed over
    (so ``sent`` always arrives before ``delivered`` and ``read``), from its own thread: never
    inside the request (or the transaction) that caused them. Retries a few times like Meta."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Delivery] = queue.Queue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None

    def post(self, url: str, payload: dict[str, Any], secret: str, *, delay: float = 0.0) -> None:
        body = encode(payload)
        with self._lock:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="demo-whatsapp-courier", daemon=True)
                self._thread.start()
        self._queue.put(_Delivery(url, body, sign(body, secret), time.monotonic() + delay))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over was posted (or given up). For tests."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                wait = delivery.not_before - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._deliver(delivery)
            except Exception:
                logger.exception("demo courier: could not post to %s", delivery.url)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, delivery: _Delivery) -> None:
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": delivery.signature}
        for attempt in range(1, COURIER_ATTEMPTS + 1):
            try:
                response = httpx.post(delivery.url, content=delivery.body, headers=headers, timeout=30.0)
                if response.status_code == 200:
                    return
                logger.warning("demo courier: %s answered %s", delivery.url, response.status_code)
            except httpx.HTTPError as exc:
                logger.warning("demo courier: %s unreachable: %s", delivery.url, exc)
            time.sleep(0.5 * attempt)


def encode(payload: dict[str, Any]) -> bytes:
    # Compact and ASCII-escaped, as Meta serialises its webhooks.
    return DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=True).encode(payload).encode()


def now_timestamp() -> str:
    return str(int(timezone.now().timestamp()))


network = Network()
courier = Courier()
