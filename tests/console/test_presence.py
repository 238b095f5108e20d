"""Presence: attendants say online, away or offline; supervisors see who is where, live."""

# The fixtures are imported from live_helpers, and pytest passes them back as arguments.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.cache import cache
from django.test import Client

from console import live as live_module
from conversations.models import Conversation
from handoffs import services as handoffs
from handoffs.models import Attendant
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
Presence = Attendant.Presence


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post(user, **data) -> int:
    return _client(user).post("/console/presence/", data, HTTP_HX_REQUEST="true").status_code


def test_it_sets_my_presence(live, team) -> None:
    # when
    response = _client(team.ana).post("/console/presence/", {"presence": "away"}, HTTP_HX_REQUEST="true")

    # then
    assert response.status_code == 200
    assert Attendant.objects.get(user=team.ana).presence == Presence.AWAY
    assert 'id="console-presence"' in response.content.decode()
    assert '<option value="away" selected>' in response.content.decode()


def test_it_redirects_back_without_htmx(live, team) -> None:
    response = _client(team.ana).post("/console/presence/", {"presence": "online", "next": "/console/"})

    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_it_does_not_redirect_to_another_site(live, team) -> None:
    response = _client(team.ana).post("/console/presence/", {"presence": "online", "next": "https://evil.example/"})

    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_it_refuses_an_unknown_presence(live, team) -> None:
    handoffs.set_presence(team.ana, Presence.ONLINE)

    assert _post(team.ana, presence="asleep") == 400
    assert Attendant.objects.get(user=team.ana).presence == Presence.ONLINE


def test_it_refuses_anonymous_and_get(live, team) -> None:
    assert Client().post("/console/presence/", {"presence": "online"}).status_code == 302
    assert _client(team.ana).get("/console/presence/").status_code == 405
    assert not Attendant.objects.exists()


def test_it_turns_the_sound_off_and_on(live, team) -> None:
    # when: the control posts its checkbox unchecked
    _post(team.ana, presence="online", with_sound="1")

    # then
    assert Attendant.objects.get(user=team.ana).sound is False

    _post(team.ana, presence="online", with_sound="1", sound="1")
    assert Attendant.objects.get(user=team.ana).sound is True


def test_it_goes_offline_on_logout(live, team) -> None:
    # given
    client = _client(team.ana)
    handoffs.set_presence(team.ana, Presence.ONLINE)

    # when
    client.post("/accounts/logout/")

    # then
    assert Attendant.objects.get(user=team.ana).presence == Presence.OFFLINE


def test_it_keeps_presence_when_the_socket_closes(live, team) -> None:
    handoffs.set_presence(team.ana, Presence.ONLINE)

    async def scenario() -> None:
        ana, connected = await connect(team.ana)
        assert connected
        await sync(ana, None)
        await ana.disconnect()

    async_to_sync(scenario)()

    assert Attendant.objects.get(user=team.ana).presence == Presence.ONLINE


def test_it_tells_the_supervisors_of_my_inboxes_and_my_other_tabs_live(live, team, english) -> None:
    async def scenario() -> dict[str, str]:
        sockets = {}
        for name in ("supervisor", "other_supervisor", "bruno", "ana"):
            sockets[name], _ = await connect(getattr(team, name))
        # when
        await sync_to_async(handoffs.set_presence)(team.ana, Presence.ONLINE)
        received = {name: "".join(await frames(socket)) for name, socket in sockets.items()}
        for socket in sockets.values():
            await socket.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then
    member = f'id="presence-{team.inbox.pk}-{team.ana.pk}"'
    assert received["supervisor"].count(member) == 1
    assert "Online" in received["supervisor"]
    assert received["other_supervisor"] == ""
    assert received["bruno"] == ""
    assert received["ana"].count('id="console-presence"') == 1
    assert '<option value="online" selected>' in received["ana"]


def test_it_announces_nothing_when_presence_does_not_change(live, team) -> None:
    handoffs.set_presence(team.ana, Presence.AWAY)

    async def scenario() -> str:
        supervisor, _ = await connect(team.supervisor)
        await sync_to_async(handoffs.set_presence)(team.ana, Presence.AWAY)
        received = "".join(await frames(supervisor))
        await supervisor.disconnect()
        return received

    assert async_to_sync(scenario)() == ""


def test_it_shows_the_team_to_supervisors(live, team, make_conversation, english) -> None:
    # given
    handoffs.set_presence(team.ana, Presence.ONLINE)
    handoffs.set_presence(team.bruno, Presence.AWAY)
    live_module.seen(team.ana.pk)
    cache.delete(live_module.SEEN_KEY.format(team.bruno.pk))
    make_conversation(Conversation.Status.ASSIGNED, assignee=team.ana)

    # when
    response = _client(team.supervisor).get("/console/team/")

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="presence-{team.inbox.pk}-{team.ana.pk}"' in html
    assert "1 open conversation" in html
    # Bruno said away and has no console syncing: the supervisor is told.
    bruno = html[html.index(f'id="presence-{team.inbox.pk}-{team.bruno.pk}"') :]
    assert "Away · console closed" in " ".join(bruno[: bruno.index("</li>")].split())
    assert "Olga" not in html  # another inbox's attendant


def test_it_refuses_the_team_to_attendants(live, team) -> None:
    response = _client(team.ana).get("/console/team/")

    assert response.status_code == 403
    assert "Bruno" not in response.content.decode()
