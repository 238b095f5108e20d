"""Shared by the live-socket tests (consumer, presence, catch-up): a team, a channel layer of
the test's own, logged-in websockets, and ``Screen``, which does with the socket's frames what
static/console/js/live.js does in the browser, so a test can assert on the page's state."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console import consumers
from conversations.models import Conversation, Customer, Inbox, Membership

ORIGIN = b"http://testserver"


@pytest.fixture
def layer(settings: Any) -> Iterator[Any]:
    """The in-memory layer on SQLite runs; channels-redis (the configured backend) with a prefix
    of this test's own when REDIS_URL is set (parallel runs on one Redis stay apart)."""
    from channels.layers import channel_layers, get_channel_layer

    if settings.REDIS_URL:
        settings.CHANNEL_LAYERS = {
            "default": {
                # The configured backend (core, or pub/sub with CHANNEL_LAYER_BACKEND).
                "BACKEND": settings.CHANNEL_LAYERS["default"]["BACKEND"],
                "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
            }
        }
    channel_layers.backends.clear()
    yield get_channel_layer()
    channel_layers.backends.clear()


@pytest.fixture
def live(settings: Any, layer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists render at once in tests (no throttle window to wait out); no second factor."""
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    settings.OTP_REQUIRED_FOR_EVERYONE = False
    monkeypatch.setattr(consumers, "LIST_INTERVAL", 0.0)
    # Renders on Django's one async-to-sync thread: no pool thread keeps a connection to the
    # test database open when it is dropped.
    monkeypatch.setattr(consumers, "RENDER_THREAD_SENSITIVE", True)


@pytest.fixture
def team(db: None) -> SimpleNamespace:
    inbox = Inbox.objects.create(name="Loja", phone_number_id="LIVE_PNID_A", app_secret="a-secret")
    other_inbox = Inbox.objects.create(name="Filial", phone_number_id="LIVE_PNID_B", app_secret="b-secret")
    people = SimpleNamespace(
        inbox=inbox,
        other_inbox=other_inbox,
        supervisor=User.objects.create_user("renata", first_name="Renata", is_staff=True),
        ana=User.objects.create_user("ana", first_name="Ana"),
        bruno=User.objects.create_user("bruno", first_name="Bruno"),
        outsider=User.objects.create_user("olga", first_name="Olga"),
        other_supervisor=User.objects.create_user("sergio", first_name="Sérgio", is_staff=True),
    )
    Membership.objects.create(user=people.supervisor, inbox=inbox, role=Membership.Role.SUPERVISOR)
    Membership.objects.create(user=people.ana, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.bruno, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.outsider, inbox=other_inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.other_supervisor, inbox=other_inbox, role=Membership.Role.SUPERVISOR)
    return people


@pytest.fixture
def make_conversation(team: SimpleNamespace) -> Callable[..., Conversation]:
    counter = iter(range(1, 10_000))

    def make(status: str = Conversation.Status.QUEUED, assignee: Any = None, **extra: Any) -> Conversation:
        number = next(counter)
        customer = extra.pop("customer", None) or Customer.objects.create(
            wa_id=f"5511977{number:06d}", name=extra.pop("name", f"Cliente {number}")
        )
        now = timezone.now()
        return Conversation.objects.create(
            inbox=extra.pop("inbox", team.inbox),
            customer=customer,
            status=status,
            assignee=assignee,
            closed=now if status == Conversation.Status.CLOSED else None,
            last_message=now,
            last_inbound=now,
            **extra,
        )

    return make


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


async def connect(
    user: User | None, *, origin: bytes = ORIGIN, csrf_secret: str | None = None
) -> tuple[WebsocketCommunicator, bool]:
    """A websocket to /ws/console/ through the production ASGI stack (origin check, session
    authentication), logged in as ``user`` (anonymous with None), with the browser's CSRF
    cookie when ``csrf_secret`` is given."""
    from config.asgi import application

    headers = [(b"origin", origin), (b"host", b"testserver")]
    if user is not None:
        cookie = await sync_to_async(session_cookie)(user)
        if csrf_secret:
            cookie += f"; {django_settings.CSRF_COOKIE_NAME}={csrf_secret}".encode()
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _code = await communicator.connect(timeout=5)
    return communicator, connected


async def frames(communicator: WebsocketCommunicator, timeout: float = 1.0) -> list[str]:
    """Every frame that arrives until the socket stays quiet for a moment."""
    out = []
    while True:
        # receive_nothing, not a receive that times out: a timeout cancels the application.
        if await communicator.receive_nothing(timeout=timeout, interval=0.02):
            return out
        out.append(await communicator.receive_from())
        timeout = 0.3


async def sync(
    communicator: WebsocketCommunicator, conversation: int | None, *, after: int = 0, since: str | None = None
) -> list[str]:
    """Ask for a sync and return every frame up to its answer (the one with the cursor), and
    whatever follows it closely."""
    await communicator.send_json_to({"type": "sync", "conversation": conversation, "after": after, "since": since})
    out = []
    while not any("data-live-cursor" in frame for frame in out):
        out.append(await communicator.receive_from(timeout=10))
    return out + await frames(communicator, timeout=0.3)


# --- What the browser does with the frames (live.js), in Python ---------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []
        self.parts: list[Any] = []

    @property
    def id(self) -> str:
        return self.attrs.get("id", "")

    def text(self) -> str:
        return "".join(part if isinstance(part, str) else part.text() for part in self.parts)


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {key: value or "" for key, value in attrs})
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {key: value or "" for key, value in attrs})
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(html: str) -> list[Node]:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree.root.children


def message_number(element_id: str) -> int | None:
    prefix = "message-"
    return (
        int(element_id[len(prefix) :])
        if element_id.startswith(prefix) and element_id[len(prefix) :].isdigit()
        else None
    )


class Screen:
    """A console page: the open conversation's timeline (message element ids in order), the
    list rows shown, toasts, and every element by id."""

    def __init__(self, conversation: int | None = None, messages: list[int] = (), rows: list[int] = ()) -> None:
        self.conversation = conversation
        self.timeline: list[str] = [f"message-{pk}" for pk in messages]
        self.rows: list[str] = [f"conversation-row-{pk}" for pk in rows]
        self.toasts: list[str] = []
        self.elements: dict[str, Node] = {}
        self.cursor: str | None = None
        self.missing: list[str] = []
        self.reload: list[str] = []

    def highest(self) -> int:
        return max((message_number(el) or 0 for el in self.timeline), default=0)

    def has(self, element_id: str) -> bool:
        return (
            element_id in self.timeline
            or element_id in self.rows
            or element_id in self.toasts
            or (element_id in self.elements)
        )

    def apply(self, html: str) -> None:
        for node in parse(html):
            if "data-live-cursor" in node.attrs:
                self.cursor = node.attrs["data-live-cursor"]
            elif "data-live-reload" in node.attrs:
                self.reload.append(node.attrs["data-live-reload"])
            elif "data-live-upsert" in node.attrs:
                wanted = node.attrs.get("data-live-conversation")
                if wanted and int(wanted) != self.conversation:
                    continue
                for child in node.children:
                    self._upsert(node.attrs["data-live-upsert"], child)
            elif node.attrs.get("hx-swap-oob") == "delete":
                self._remove(node.id)
            elif node.id:
                if self.has(node.id) or node.id in ("console-counters", "conversation-header", "console-typing"):
                    self.elements[node.id] = node
                else:
                    self.missing.append(node.id)

    def _upsert(self, into: str, node: Node) -> None:
        if self.has(node.id):
            self.elements[node.id] = node
            return
        if into == "#console-toasts":
            self.toasts.append(node.id)
            self.elements[node.id] = node
            return
        number = message_number(node.id)
        shown = [message_number(el) for el in self.timeline]
        if shown and number < shown[0]:
            return  # an older page, not loaded
        position = next((i for i, n in enumerate(shown) if n > number), len(shown))
        self.timeline.insert(position, node.id)
        self.elements[node.id] = node

    def _remove(self, element_id: str) -> None:
        for bucket in (self.timeline, self.rows, self.toasts):
            if element_id in bucket:
                bucket.remove(element_id)
        self.elements.pop(element_id, None)

    def text(self, element_id: str) -> str:
        node = self.elements.get(element_id)
        return " ".join(node.text().split()) if node else ""
