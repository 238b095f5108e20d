"""The access walk: every console URL, API route and the websocket, tried by the wrong user.

Routes are discovered from the URL resolver (the ``console`` namespace and everything under
``/api/``), so a route added later is walked too. Each ``<int:...>`` argument is filled with
the id of an object the user may not see (picked by the path segment before it: ``c/`` and
``conversations/`` a conversation, ``m/`` and ``media/`` a message, ``customers/`` a customer,
``labels/``, ``canned-responses/``, ``templates/`` theirs). The wrong users:

- anonymous: console pages redirect to the login page, the API answers 401/403;
- Olga, attendant of another inbox, on everything of inbox A;
- Bruno, attendant of inbox A, on Ana's conversation (and on inbox B's catalogue);
- Ana on inbox B's conversation;
- every route also with the methods it does not take.

Nothing may answer 2xx (or redirect anywhere but the login page) for an object of someone
else, and no body may contain the customer's name, phone or message text. A positive control
(the owner reads the same route) proves each argument points at a real object of the right
kind, so a route cannot pass by answering 404 to everyone. Afterwards nothing has changed.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from conversations import events
from conversations.models import CannedResponse, Conversation, Customer, Inbox, Label, Membership, Message
from conversations.models import MessageTemplate as Template
from tests.console.live_helpers import connect, frames, layer, sync  # noqa: F401 (layer is a fixture)

pytestmark = pytest.mark.django_db

# The secrets of each inbox's conversation: none may appear in what the wrong user receives.
SECRETS = {
    "A": ("Xavier Sigiloso", "5511976540001", "976540001", "MENSAGEM-SECRETA-DO-XAVIER", "NOTA-INTERNA-XAVIER"),
    "B": ("Yolanda Reservada", "5521965430002", "965430002", "MENSAGEM-SECRETA-DA-YOLANDA", "NOTA-INTERNA-YOLANDA"),
}
METHODS = ("get", "post", "put", "patch", "delete")
# A body that would pass validation, so that access, not a form error, is what refuses.
BODY = {
    "text": "oi",
    "body": "oi",
    "resolution": "resolvido",
    "emoji": "👍",
    "reason": "x",
    "notes": "x",
    "name": "x",
    "language": "pt_BR",
    "queue": "1",
}
# Routes whose positive control cannot answer 200 with the walk's data, and why.
NO_POSITIVE_CONTROL = {
    # Serves a stored media file; the walk's messages are text (404 to everyone is right).
    "console:media",
}


@dataclass(frozen=True)
class Route:
    name: str  # "console:conversation", "api-conversation-detail"
    path: str  # the pattern, for messages
    params: tuple[str, ...]
    segments: dict[str, str]  # param -> the literal path segment before it


def _join(prefix: str, pattern: Any) -> str:
    return prefix + str(pattern)


def _params_and_segments(path: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The arguments of a route (``<int:pk>`` or ``(?P<pk>...)``) and the literal path segment
    before each (which says what kind of object it is)."""
    params, segments = [], {}
    for match in re.finditer(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", path):
        name = match.group(1) or match.group(2)
        before = re.sub(r"[\^$?]", "", path[: match.start()]).rstrip("/").rsplit("/", 1)[-1]
        params.append(name)
        segments[name] = before
    return tuple(params), segments


def discover() -> list[Route]:
    """Every named route of the console namespace and under api/."""
    routes: list[Route] = []

    def walk(patterns: list[Any], prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
                walk(pattern.url_patterns, _join(prefix, pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                path = _join(prefix, pattern.pattern)
                clean = path.lstrip("^")
                if not (clean.startswith("console/") or clean.startswith("api/")):
                    continue
                # An unnamed route is walked by its path (see url_for).
                name = f"{namespace}:{pattern.name}" if namespace and pattern.name else (pattern.name or "")
                params, segments = _params_and_segments(path)
                routes.append(Route(name, path, params, segments))

    walk(get_resolver().url_patterns, "", None)
    # DRF's format-suffix variants repeat a route; one of each name is enough.
    unique = {}
    for route in routes:
        unique.setdefault((route.name or route.path, route.params), route)
    return list(unique.values())


def url_for(route: Route, kwargs: dict[str, Any] | None = None) -> str:
    kwargs = kwargs or {}
    if route.name:
        return reverse(route.name, kwargs=kwargs)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route.path)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(kwargs[m.group(1)]), path)
    return "/" + path.replace("^", "").replace("$", "").replace("/?", "/")


# --- The world ------------------------------------------------------------------------------------


def _side(inbox: Inbox, key: str, owner: User) -> SimpleNamespace:
    name, phone, _tail, text, note = SECRETS[key]
    customer = Customer.objects.create(wa_id=phone, name=name, notes=note)
    conversation = Conversation.objects.create(
        inbox=inbox, customer=customer, status=Conversation.Status.ASSIGNED, assignee=owner
    )
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="text",
        text=text,
        wamid=f"wamid.WALK-{key}",
        wa_timestamp=timezone.now(),
    )
    label = Label.objects.create(inbox=inbox, name=f"etiqueta-{key}")
    conversation.labels.add(label)
    canned = CannedResponse.objects.create(inbox=inbox, shortcut=f"atalho-{key.lower()}", title="t", text="t")
    template = Template.objects.create(
        inbox=inbox, name=f"modelo_{key.lower()}", language="pt_BR", status=Template.Status.APPROVED
    )
    return SimpleNamespace(
        inbox=inbox,
        customer=customer,
        conversation=conversation,
        message=message,
        label=label,
        canned=canned,
        template=template,
        owner=owner,
        secrets=SECRETS[key],
    )


@pytest.fixture
def world(settings: Any) -> SimpleNamespace:
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    settings.OTP_REQUIRED_FOR_EVERYONE = False
    inbox_a = Inbox.objects.create(name="Loja A", phone_number_id="WALK_PNID_A", app_secret="a")
    inbox_b = Inbox.objects.create(name="Loja B", phone_number_id="WALK_PNID_B", app_secret="b")
    ana = User.objects.create_user("ana", first_name="Ana")
    bruno = User.objects.create_user("bruno", first_name="Bruno")
    olga = User.objects.create_user("olga", first_name="Olga")
    Membership.objects.create(user=ana, inbox=inbox_a, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=bruno, inbox=inbox_a, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=olga, inbox=inbox_b, role=Membership.Role.ATTENDANT)
    return SimpleNamespace(a=_side(inbox_a, "A", ana), b=_side(inbox_b, "B", olga), ana=ana, bruno=bruno, olga=olga)


def kwargs_for(route: Route, side: SimpleNamespace) -> dict[str, Any]:
    by_segment = {
        "c": side.conversation,
        "conversations": side.conversation,
        "m": side.message,
        "media": side.message,
        "messages": side.message,
        "customers": side.customer,
        "labels": side.label,
        "canned-responses": side.canned,
        "canned": side.canned,
        "templates": side.template,
    }
    kwargs = {}
    for param in route.params:
        # message_pk, message_id: a message; otherwise the segment says what it is.
        target = side.message if "message" in param else by_segment.get(route.segments[param], side.conversation)
        if f"<uuid:{param}>" in route.path:
            kwargs[param] = getattr(target, "uuid", None) or uuid.uuid4()
        elif f"<slug:{param}>" in route.path or f"<str:{param}>" in route.path:
            kwargs[param] = getattr(target, "shortcut", None) or getattr(target, "wamid", None) or target.pk
        else:
            kwargs[param] = target.pk
    return kwargs


def snapshot(side: SimpleNamespace) -> tuple:
    conversation = Conversation.objects.get(pk=side.conversation.pk)
    customer = Customer.objects.get(pk=side.customer.pk)
    return (
        conversation.status,
        conversation.assignee_id,
        conversation.resolution,
        sorted(conversation.labels.values_list("pk", flat=True)),
        customer.notes,
        Message.objects.filter(conversation=conversation).count(),
        Label.objects.filter(pk=side.label.pk).values_list("name", flat=True).first(),
        CannedResponse.objects.filter(pk=side.canned.pk).values_list("text", flat=True).first(),
        Template.objects.filter(pk=side.template.pk).count(),
    )


def leaks(body: bytes, secrets: tuple[str, ...]) -> list[str]:
    text = body.decode(errors="replace")
    return [secret for secret in secrets if secret in text]


def request(client: Client, method: str, url: str) -> Any:
    if method == "get":
        return client.get(url)
    if method == "post":
        return client.post(url, BODY)
    return getattr(client, method)(url, BODY, content_type="application/json")


def allowed_refusal(response: Any, *, anonymous: bool, api: bool) -> bool:
    if response.status_code in (403, 404, 405):
        return True
    if anonymous and api and response.status_code == 401:
        return True
    if anonymous and response.status_code == 302:
        return response.url.startswith("/accounts/login/")
    return False


# --- The walk -------------------------------------------------------------------------------------


def test_it_discovers_the_console_and_api_routes() -> None:
    # when
    names = {route.name for route in discover()}

    # then: the ones that exist today are found (later ones are walked without being listed)
    assert {"console:conversation", "console:index"} <= names
    for route in discover():
        if route.params:
            assert all(route.segments[p] for p in route.params), route


def walk_objects(world: SimpleNamespace) -> list[str]:
    """Every route with arguments, by every wrong user, with every method."""
    problems = []
    # (who, whose objects, the client) — Bruno's catalogue case uses inbox B's label/canned/template.
    cases = [
        ("anonymous", world.a, Client()),
        ("olga", world.a, Client()),
        ("bruno", world.a, Client()),
        ("ana", world.b, Client()),
    ]
    for who, _, client in cases:
        if who != "anonymous":
            client.force_login(getattr(world, who))
    for route in discover():
        if not route.params:
            continue
        api = route.path.lstrip("^").startswith("api/")
        for who, side, client in cases:
            target = side
            if who == "bruno" and route.segments.get(route.params[0]) in ("labels", "canned-responses", "templates"):
                # Inbox A's catalogue is Bruno's own; inbox B's is not.
                target = world.b
            url = url_for(route, kwargs_for(route, target))
            for method in METHODS if api else ("get", "post"):
                response = request(client, method, url)
                secrets = (*target.secrets, *(world.a.secrets if target is world.b and who == "bruno" else ()))
                found = leaks(response.content, secrets)
                if found:
                    problems.append(f"{who} {method.upper()} {url} ({route.name}) leaks {found}")
                if not allowed_refusal(response, anonymous=who == "anonymous", api=api):
                    problems.append(f"{who} {method.upper()} {url} ({route.name}) answered {response.status_code}")
    return problems


def test_it_refuses_every_object_route_to_the_wrong_user_without_leaking(world: SimpleNamespace) -> None:
    # given
    before = (snapshot(world.a), snapshot(world.b))

    # when
    problems = walk_objects(world)

    # then
    assert problems == []
    assert (snapshot(world.a), snapshot(world.b)) == before


def test_it_has_a_positive_control_for_every_object_route(world: SimpleNamespace) -> None:
    """The owner reads each route with the same arguments: the ids point at real objects."""
    # given
    owner = Client()
    owner.force_login(world.ana)

    # when
    unreachable = []
    for route in discover():
        if not route.params or route.name in NO_POSITIVE_CONTROL:
            continue
        url = url_for(route, kwargs_for(route, world.a))
        response = owner.get(url)
        if response.status_code == 404:
            unreachable.append(f"{url} ({route.name})")

    # then
    assert unreachable == []


def test_it_shows_the_owner_the_secrets_the_walk_looks_for(world: SimpleNamespace) -> None:
    # given: the walk's leak check would see the data if it were there
    owner = Client()
    owner.force_login(world.ana)

    # when
    page = owner.get(reverse("console:conversation", kwargs={"pk": world.a.conversation.pk}))

    # then
    assert page.status_code == 200
    assert leaks(page.content, world.a.secrets[:1] + world.a.secrets[3:4]) == list(
        world.a.secrets[:1] + world.a.secrets[3:4]
    )


@pytest.mark.parametrize("who", ["anonymous", "olga", "bruno"])
def test_it_leaks_nothing_in_lists_searches_and_filters(world: SimpleNamespace, who: str) -> None:
    # given
    client = Client()
    if who != "anonymous":
        client.force_login(getattr(world, who))
    a = world.a
    queries = [
        "",
        f"?q={a.secrets[0].split()[0]}",
        f"?q={a.secrets[2]}",
        f"?q={a.secrets[3]}",
        "?view=all",
        "?view=mine",
        f"?inbox={a.inbox.pk}",
        f"?assignee={world.ana.pk}",
        f"?attendant={world.ana.pk}",
        f"?label={a.label.pk}",
        "?status=assigned",
        "?status=closed",
    ]

    # when
    problems = []
    for route in discover():
        if route.params:
            continue
        for query in queries:
            url = url_for(route) + query
            for method in ("get", "post"):
                response = request(client, method, url)
                # The search box shows back what was typed: the other secrets are what a match
                # would leak.
                searched = tuple(secret for secret in a.secrets if secret.split()[0] not in query)
                found = leaks(response.content, searched)
                if found:
                    problems.append(f"{who} {method.upper()} {url} leaks {found}")
                api = route.path.lstrip("^").startswith("api/")
                # The schema and docs are public; the token endpoint answers 400 without credentials.
                public = route.name in ("api-schema", "api-docs", "api-token")
                if who == "anonymous" and not public and not allowed_refusal(response, anonymous=True, api=api):
                    problems.append(f"anonymous {method.upper()} {url} answered {response.status_code}")

    # then
    assert problems == []


def test_it_refuses_the_try_the_bot_page_to_all_but_admins_and_the_inboxs_supervisors(world: SimpleNamespace) -> None:
    """``/console/bots/try/`` names no object in its path, so the walk above only tries it
    without arguments: here with inbox A in the query and the form, by every wrong user."""
    # given: a supervisor of inbox B, and one of inbox A for the positive control
    sergio = User.objects.create_user("sergio", is_staff=True)
    renata = User.objects.create_user("renata", is_staff=True)
    Membership.objects.create(user=sergio, inbox=world.b.inbox, role=Membership.Role.SUPERVISOR)
    Membership.objects.create(user=renata, inbox=world.a.inbox, role=Membership.Role.SUPERVISOR)
    url = reverse("console:try_bot")
    before = (snapshot(world.a), snapshot(world.b), Conversation.objects.count(), Message.objects.count())
    problems = []

    # when
    for who in ("anonymous", "olga", "bruno", "ana", "sergio"):
        client = Client()
        if who != "anonymous":
            client.force_login(sergio if who == "sergio" else getattr(world, who))
        for response in (
            client.get(url, {"inbox": world.a.inbox.pk}),
            client.post(url, {"inbox": world.a.inbox.pk, "text": "oi"}),
            client.post(url, {"inbox": world.a.inbox.pk, "line": ["oi"], "text": "quero um atendente"}),
        ):
            if not allowed_refusal(response, anonymous=who == "anonymous", api=False):
                problems.append(f"{who} {response.request['REQUEST_METHOD']} answered {response.status_code}")
            if world.a.inbox.name in response.content.decode(errors="replace"):
                problems.append(f"{who} sees inbox A's name")
    owner = Client()
    owner.force_login(renata)
    control = owner.get(url, {"inbox": world.a.inbox.pk})

    # then
    assert problems == []
    assert control.status_code == 200 and world.a.inbox.name in control.content.decode()
    assert (snapshot(world.a), snapshot(world.b), Conversation.objects.count(), Message.objects.count()) == before


# --- The websocket ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("layer")
@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_anonymous_websocket() -> None:
    async def scenario() -> bool:
        communicator, connected = await connect(None)
        await communicator.disconnect()
        return connected

    assert asyncio.run(scenario()) is False


@pytest.mark.usefixtures("layer")
@pytest.mark.django_db(transaction=True)
def test_it_sends_no_foreign_data_over_the_websocket(settings: Any) -> None:
    # given
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    world = _world_for_sockets()
    a = world.a

    async def scenario() -> dict[str, list[str]]:
        sockets = {}
        for who in ("olga", "bruno", "ana"):
            communicator, connected = await connect(getattr(world, who))
            assert connected, who
            sockets[who] = communicator
        received: dict[str, list[str]] = {}
        # Each asks to subscribe to Ana's conversation (only Ana may).
        for who, communicator in sockets.items():
            received[who] = await sync(communicator, a.conversation.pk)
        # Then everything about it is published, as the services do after commit.
        from asgiref.sync import sync_to_async

        def publish() -> None:
            events.message_created(a.message)
            events.message_updated(a.message, "status")
            events.conversation_updated(a.conversation)
            events.conversation_opened(a.conversation)

        await sync_to_async(publish)()
        await sockets["ana"].send_json_to({"type": "typing"})
        for who, communicator in sockets.items():
            received[who] += await frames(communicator)
            await communicator.disconnect()
        return received

    # when
    received = asyncio.run(scenario())

    # then
    assert leaks("".join(received["olga"]).encode(), a.secrets) == []
    assert leaks("".join(received["bruno"]).encode(), a.secrets) == []
    # positive control: the owner's socket did carry them
    assert a.secrets[3] in "".join(received["ana"])


def _world_for_sockets() -> SimpleNamespace:
    inbox_a = Inbox.objects.create(name="Loja A", phone_number_id="WALK_WS_A", app_secret="a")
    inbox_b = Inbox.objects.create(name="Loja B", phone_number_id="WALK_WS_B", app_secret="b")
    ana = User.objects.create_user("ana", first_name="Ana")
    bruno = User.objects.create_user("bruno", first_name="Bruno")
    olga = User.objects.create_user("olga", first_name="Olga")
    Membership.objects.create(user=ana, inbox=inbox_a, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=bruno, inbox=inbox_a, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=olga, inbox=inbox_b, role=Membership.Role.ATTENDANT)
    return SimpleNamespace(a=_side(inbox_a, "A", ana), b=_side(inbox_b, "B", olga), ana=ana, bruno=bruno, olga=olga)


def test_it_answers_404_on_every_demo_route_outside_the_embedded_mode(world: SimpleNamespace, settings: Any) -> None:
    # given: production (the customer's phone shows every customer, by design, in the demo only)
    settings.DEMO_ENABLED = False
    admin = User.objects.create_superuser("root")
    routes = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, _join(prefix, pattern.pattern))
            elif _join(prefix, pattern.pattern).startswith("demo/"):
                routes.append(_join(prefix, pattern.pattern))

    walk(get_resolver().url_patterns, "")
    problems = []

    # when
    for path in routes:
        params, _segments = _params_and_segments(path)
        url = url_for(Route("", path, params, {}), dict.fromkeys(params, world.a.message.pk))
        if "(?P<version>" in path:
            url = url.replace(str(world.a.message.pk), "v24.0", 1)
        for who in (None, admin):
            client = Client()
            if who is not None:
                client.force_login(who)
            for method in ("get", "post"):
                response = request(client, method, url)
                if response.status_code != 404 or leaks(response.content, world.a.secrets):
                    problems.append(f"{method.upper()} {url} answered {response.status_code}")

    # then
    assert routes
    assert problems == []


def test_it_refuses_every_post_without_the_csrf_token_even_to_the_owner(world: SimpleNamespace) -> None:
    # given: Ana's own conversation, her logged-in browser, a forged cross-site form or htmx call
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.ana)
    before = snapshot(world.a)

    # when
    accepted = []
    for route in discover():
        url = url_for(route, kwargs_for(route, world.a))
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(url, BODY, **headers)
            if response.status_code not in (403, 404, 405):
                accepted.append(f"POST {url} ({route.name or route.path}) {headers} answered {response.status_code}")

    # then
    assert accepted == []
    assert snapshot(world.a) == before


@pytest.mark.usefixtures("layer")
@pytest.mark.django_db(transaction=True)
def test_it_stops_a_websocket_whose_session_logged_out(settings: Any) -> None:
    # given: Ana's console is open; she logs out in another tab (or is idle-expired, or her
    # password changes): the session the socket was opened with no longer exists
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    world = _world_for_sockets()
    a = world.a

    async def scenario() -> str:
        from asgiref.sync import sync_to_async
        from django.contrib.sessions.models import Session

        communicator, connected = await connect(world.ana)
        assert connected
        await sync(communicator, a.conversation.pk)
        await sync_to_async(lambda: Session.objects.all().delete())()

        def publish() -> None:
            events.message_created(a.message)
            events.conversation_updated(a.conversation)

        await sync_to_async(publish)()
        received = await texts_until_closed(communicator)
        if not communicator.output_queue.empty() or not received.endswith("<closed>"):
            await communicator.send_json_to({"type": "sync", "conversation": a.conversation.pk})
            received += await texts_until_closed(communicator)
        await communicator.disconnect()
        return received

    # when
    received = asyncio.run(scenario())

    # then
    assert leaks(received.encode(), a.secrets) == []


async def texts_until_closed(communicator: Any) -> str:
    """What a socket sends until it stays quiet, or "<closed>" once the server closes it (a
    closed socket is a right answer to a session that ended)."""
    out = []
    while not await communicator.receive_nothing(timeout=0.5, interval=0.02):
        message = await communicator.receive_output()
        if message["type"] == "websocket.close":
            out.append("<closed>")
            break
        out.append(message.get("text", ""))
    return "".join(out)
