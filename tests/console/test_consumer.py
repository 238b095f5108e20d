"""The console's websocket (/ws/console/): who may connect, and that each user gets the
fragments of what they may see, and nothing else."""

# The fixtures are imported from live_helpers, and pytest passes them back as arguments.
# ruff: noqa: F811

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction

from conversations import events, services
from conversations.models import Conversation, Membership, Message
from handoffs import services as handoffs
from tests.console.live_helpers import (  # noqa: F401 -- fixtures
    connect,
    frames,
    layer,
    live,
    make_conversation,
    sync,
    team,
)

pytestmark = pytest.mark.django_db(transaction=True)
Status = Conversation.Status


def _note(conversation: Conversation, author, text: str) -> Message:
    with transaction.atomic():
        return services.add_note(conversation, author, text)


def test_it_refuses_anonymous_users(live, team) -> None:
    async def scenario() -> bool:
        communicator, connected = await connect(None)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_it_refuses_foreign_origins(live, team) -> None:
    async def scenario() -> tuple[bool, bool]:
        foreign, refused = await connect(team.ana, origin=b"https://evil.example")
        await foreign.disconnect()
        ours, accepted = await connect(team.ana)
        await ours.disconnect()
        return refused, accepted

    assert async_to_sync(scenario)() == (False, True)


def test_it_refuses_inactive_users(live, team) -> None:
    # given
    team.ana.is_active = False
    team.ana.save(update_fields=["is_active"])

    async def scenario() -> bool:
        communicator, connected = await connect(team.ana)
        await communicator.disconnect()
        return connected

    # then
    assert async_to_sync(scenario)() is False


def test_it_pushes_a_new_message_of_the_open_conversation_with_its_row(live, team, make_conversation, english) -> None:
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")

    async def scenario() -> list[str]:
        communicator, _ = await connect(team.ana)
        await sync(communicator, conversation.pk)
        # when
        message = await sync_to_async(_note)(conversation, team.bruno, "Cliente pediu 2ª via do boleto")
        received = await frames(communicator)
        await communicator.disconnect()
        return message, received

    message, received = async_to_sync(scenario)()

    # then
    html = "".join(received)
    assert f'id="message-{message.pk}"' in html
    assert html.count(f'id="message-{message.pk}"') == 1
    assert "Cliente pediu 2ª via do boleto" in html
    assert f'id="conversation-row-{conversation.pk}"' in html
    # A message moves a row, not a count.
    assert 'id="console-counters"' not in html


def test_it_pushes_an_inbound_message_to_everyone_who_may_see_it_and_to_no_one_else(
    live, team, make_conversation
) -> None:
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")
    other = make_conversation(Status.QUEUED, name="Cliente da Filial", inbox=team.other_inbox)

    async def scenario() -> dict[str, str]:
        sockets = {}
        for name in ("ana", "bruno", "supervisor", "outsider", "other_supervisor"):
            sockets[name], _ = await connect(getattr(team, name))
            await sync(sockets[name], conversation.pk)
        # when
        await sync_to_async(_note)(conversation, team.supervisor, "segredo da loja")
        received = {name: "".join(await frames(socket)) for name, socket in sockets.items()}
        for socket in sockets.values():
            await socket.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    for name in ("ana", "bruno", "supervisor"):
        assert "segredo da loja" in received[name], name
    assert received["outsider"] == ""
    assert received["other_supervisor"] == ""
    assert other.pk  # the other inbox's conversation exists and is not what they got


def test_it_keeps_anas_conversation_from_bruno(live, team, make_conversation) -> None:
    # given: Ana holds the conversation; Bruno is in the same inbox (so in its group)
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana, name="Maria Souza")

    async def scenario() -> tuple[str, str, str]:
        ana, _ = await connect(team.ana)
        bruno, _ = await connect(team.bruno)
        await sync(ana, conversation.pk)
        # Bruno asks for Ana's conversation by id: not subscribed, nothing of it sent.
        bruno_sync = "".join(await sync(bruno, conversation.pk))
        # when
        await sync_to_async(_note)(conversation, team.ana, "anotação da Ana")
        to_ana, to_bruno = "".join(await frames(ana)), "".join(await frames(bruno))
        await ana.disconnect()
        await bruno.disconnect()
        return bruno_sync, to_ana, to_bruno

    bruno_sync, to_ana, to_bruno = async_to_sync(scenario)()

    # then
    assert "anotação da Ana" in to_ana
    assert to_bruno == ""
    assert "Maria Souza" not in bruno_sync
    # Only the removal of the row by id, never the row itself.
    assert f'<li id="conversation-row-{conversation.pk}"' not in bruno_sync


def test_it_stops_delivering_when_access_is_revoked_mid_connection(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")

    async def scenario() -> tuple[str, str]:
        ana, _ = await connect(team.ana)
        await sync(ana, conversation.pk)
        await sync_to_async(_note)(conversation, team.supervisor, "antes")
        before = "".join(await frames(ana))
        # when: Ana leaves the inbox while her console is open
        await sync_to_async(Membership.objects.filter(user=team.ana).delete)()
        await sync_to_async(_note)(conversation, team.supervisor, "depois")
        after = "".join(await frames(ana))
        await ana.disconnect()
        return before, after

    before, after = async_to_sync(scenario)()

    # then
    assert "antes" in before
    assert after == ""


def test_it_removes_the_row_of_a_conversation_another_attendant_took(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")

    async def scenario() -> str:
        bruno, _ = await connect(team.bruno)
        await sync(bruno, None)
        # when
        await sync_to_async(handoffs.take_over)(conversation, team.ana)
        received = "".join(await frames(bruno))
        await bruno.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then: the row goes, by id; nothing about the customer is sent
    assert f'<div id="conversation-row-{conversation.pk}" hx-swap-oob="delete"></div>' in received
    assert "Maria Souza" not in received


def test_it_redraws_the_header_of_the_open_conversation_when_its_owner_changes(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")

    async def scenario() -> str:
        supervisor, _ = await connect(team.supervisor)
        await sync(supervisor, conversation.pk)
        # when
        await sync_to_async(handoffs.take_over)(conversation, team.ana)
        received = "".join(await frames(supervisor))
        await supervisor.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    assert received.count('id="conversation-header"') == 1
    assert "Ana" in received


def test_it_tells_me_with_a_toast_and_a_sound_when_someone_assigns_me_a_conversation(
    live, team, make_conversation, english
) -> None:
    conversation = make_conversation(Status.QUEUED, name="Maria Souza")

    async def scenario() -> str:
        ana, _ = await connect(team.ana)
        await sync(ana, None)
        # when
        await sync_to_async(handoffs.assign)(conversation, team.supervisor, team.ana)
        received = "".join(await frames(ana))
        await ana.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    change = conversation.ownership_changes.get()
    assert received.count(f'id="console-toast-{change.pk}"') == 1
    assert 'data-live-upsert="#console-toasts"' in received
    assert "Renata assigned you a conversation" in received
    assert 'data-sound="/static/console/sounds/assigned.wav"' in received
    assert 'data-notify-title="Conversation assigned to you"' in received


def test_it_masks_a_nameless_customers_number_in_an_attendants_toast(live, team, make_conversation) -> None:
    # given: an attendant sees customers' numbers masked, so a toast must not show it whole
    conversation = make_conversation(Status.QUEUED, name="")
    wa_id = conversation.customer.wa_id

    async def scenario() -> str:
        ana, _ = await connect(team.ana)
        await sync(ana, None)
        # when
        await sync_to_async(handoffs.assign)(conversation, team.supervisor, team.ana)
        received = "".join(await frames(ana))
        await ana.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    assert "console-toast-" in received
    assert wa_id not in received
    assert wa_id[-4:] in received


def test_it_does_not_toast_a_conversation_i_took_myself(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    async def scenario() -> str:
        ana, _ = await connect(team.ana)
        await sync(ana, None)
        # when
        await sync_to_async(handoffs.take_over)(conversation, team.ana)
        received = "".join(await frames(ana))
        await ana.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    assert "console-toast" not in received
    assert f'id="conversation-row-{conversation.pk}"' in received
    assert 'id="console-counters"' in received


def test_it_plays_no_sound_for_whoever_turned_it_off(live, team, make_conversation) -> None:
    handoffs.set_sound(team.ana, False)
    conversation = make_conversation(Status.QUEUED)

    async def scenario() -> str:
        ana, _ = await connect(team.ana)
        await sync(ana, None)
        await sync_to_async(handoffs.assign)(conversation, team.supervisor, team.ana)
        received = "".join(await frames(ana))
        await ana.disconnect()
        return received

    received = async_to_sync(scenario)()

    assert "console-toast-" in received
    assert "data-sound" not in received


def test_it_redraws_a_message_whose_delivery_tick_changed(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.ATTENDANT,
        sender=team.ana,
        type="text",
        text="Seu pedido saiu para entrega",
        status=Message.Status.SENT,
    )

    def deliver() -> None:
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).update(status=Message.Status.READ)
            events.message_updated(message, "status")

    async def scenario() -> str:
        ana, _ = await connect(team.ana)
        await sync(ana, conversation.pk)
        # when
        await sync_to_async(deliver)()
        received = "".join(await frames(ana))
        await ana.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    assert received.count(f'id="message-{message.pk}"') == 1
    assert "Seu pedido saiu para entrega" in received


def test_it_shows_typing_to_the_others_in_the_conversation(live, team, make_conversation, english) -> None:
    conversation = make_conversation(Status.QUEUED)
    elsewhere = make_conversation(Status.QUEUED)

    async def scenario() -> tuple[str, str, str, str]:
        ana, _ = await connect(team.ana)
        bruno, _ = await connect(team.bruno)
        supervisor, _ = await connect(team.supervisor)
        await sync(ana, conversation.pk)
        await sync(bruno, conversation.pk)
        await sync(supervisor, elsewhere.pk)
        # when
        await ana.send_json_to({"type": "typing"})
        await ana.send_json_to({"type": "typing"})  # throttled: one is forwarded
        to_bruno, to_ana, to_supervisor = (
            "".join(await frames(bruno)),
            "".join(await frames(ana)),
            "".join(await frames(supervisor)),
        )
        for socket in (ana, bruno, supervisor):
            await socket.disconnect()
        return to_bruno, to_ana, to_supervisor, ""

    to_bruno, to_ana, to_supervisor, _ = async_to_sync(scenario)()

    # then
    assert to_bruno.count('id="console-typing"') == 1
    assert "Ana is typing…" in to_bruno
    assert to_ana == ""
    assert to_supervisor == ""


def test_it_ignores_typing_without_an_open_conversation_and_garbage(live, team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)

    async def scenario() -> str:
        ana, _ = await connect(team.ana)
        bruno, _ = await connect(team.bruno)
        await sync(bruno, conversation.pk)
        await ana.send_json_to({"type": "typing"})
        await ana.send_to(text_data="not json")
        await ana.send_json_to([1, 2])
        received = "".join(await frames(bruno))
        await ana.disconnect()
        await bruno.disconnect()
        return received

    assert async_to_sync(scenario)() == ""


def test_it_gives_each_console_its_own_csrf_token_in_a_shared_fragment(live, team, make_conversation) -> None:
    # given: a sent message (its fragment has forms: react, with {% csrf_token %}), rendered
    # once per process and shared by the consoles that have its conversation open
    from django.middleware.csrf import _get_new_csrf_string, _unmask_cipher_token

    conversation = make_conversation(Status.QUEUED)
    secrets = {"ana": _get_new_csrf_string(), "bruno": _get_new_csrf_string()}

    def send() -> Message:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.OUT,
                sender_kind=Message.SenderKind.ATTENDANT,
                sender=team.ana,
                type="text",
                text="Pode confirmar o endereço?",
                wamid="wamid.LIVE-CSRF-1",
                status=Message.Status.SENT,
            )
            events.message_created(message)
        return message

    async def scenario() -> dict[str, str]:
        # Ana's console renders it live; Bruno's, opened a moment later, gets it by its sync
        # from the shared copy.
        ana, _ = await connect(team.ana, csrf_secret=secrets["ana"])
        await sync(ana, conversation.pk)
        await sync_to_async(send)()
        received = {"ana": "".join(await frames(ana))}
        bruno, _ = await connect(team.bruno, csrf_secret=secrets["bruno"])
        received["bruno"] = "".join(await sync(bruno, conversation.pk))
        await ana.disconnect()
        await bruno.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    for name, html in received.items():
        tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert tokens, name
        assert {_unmask_cipher_token(token) for token in tokens} == {secrets[name]}, name
        assert "stand0in" not in html


def test_it_delivers_every_inbox_to_an_admin(live, team, make_conversation) -> None:
    # given: a superuser, member of no inbox
    from django.contrib.auth.models import User

    admin = User.objects.create_superuser("root")
    conversation = make_conversation(Status.ASSIGNED, assignee=team.outsider, inbox=team.other_inbox)

    async def scenario() -> str:
        socket, _ = await connect(admin)
        await sync(socket, conversation.pk)
        await sync_to_async(_note)(conversation, team.outsider, "na filial")
        received = "".join(await frames(socket))
        await socket.disconnect()
        return received

    # then
    assert "na filial" in async_to_sync(scenario)()


def test_one_subscription_per_process_serves_every_console_of_the_inbox(live, team, make_conversation) -> None:
    import asyncio

    from console import fanout
    from conversations.events import inbox_group

    conversation = make_conversation(Status.QUEUED, name="Maria Souza")
    group = inbox_group(team.inbox.pk)

    async def scenario() -> tuple[int, set, list[str], dict]:
        consoles = [(await connect(user))[0] for user in (team.ana, team.bruno, team.supervisor)]
        for console in consoles:
            await sync(console, None)
        here = fanout._fanouts[asyncio.get_running_loop()]
        members, channels = len(here.groups[group].members), {here.groups[group].channel}
        # when: one event for the inbox
        await sync_to_async(_note)(conversation, team.supervisor, "para todos")
        received = ["".join(await frames(console)) for console in consoles]
        for console in consoles:
            await console.disconnect()
        return members, channels, received, dict(here.groups)

    members, channels, received, left = async_to_sync(scenario)()

    # then: three consoles, one channel in the group; each console got the row; nothing left
    # subscribed once they closed
    assert members == 3 and len(channels) == 1
    assert all(f'id="conversation-row-{conversation.pk}"' in html for html in received)
    assert left == {}
