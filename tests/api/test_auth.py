"""The API's authentication (session and token), the user's own token, the throttles, and
the schema and docs pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conversations.models import Conversation, Message

pytest_plugins = ["tests.console.actions_support"]

Status = Conversation.Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


# --- Tokens ---------------------------------------------------------------------------------------


def test_it_authenticates_with_a_token_made_by_the_users_session(team, make_conversation, login) -> None:
    # given
    make_conversation(Status.QUEUED)
    session = login(team.ana)

    # when
    made = session.post("/api/auth/token/")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {made.json()['token']}")
    response = client.get("/api/conversations/")

    # then
    assert made.status_code == 201
    assert Token.objects.get(user=team.ana).key == made.json()["token"]
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_it_replaces_the_old_token_when_making_a_new_one(team, login) -> None:
    # given
    session = login(team.ana)
    old = session.post("/api/auth/token/").json()["token"]

    # when
    new = session.post("/api/auth/token/").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")

    # then
    assert new != old
    assert client.get("/api/conversations/").status_code == 403
    assert list(Token.objects.filter(user=team.ana).values_list("key", flat=True)) == [new]


def test_it_revokes_the_token(team, login, api) -> None:
    # given
    client = api(team.ana)

    # when
    response = login(team.ana).delete("/api/auth/token/")

    # then
    assert response.status_code == 204
    assert not Token.objects.filter(user=team.ana).exists()
    assert client.get("/api/conversations/").status_code == 403


def test_it_lets_no_token_mint_a_token(team, api) -> None:
    # given
    client = api(team.ana)
    key = Token.objects.get(user=team.ana).key

    # when
    response = client.post("/api/auth/token/")

    # then
    assert response.status_code == 403
    assert list(Token.objects.filter(user=team.ana).values_list("key", flat=True)) == [key]


def test_it_makes_no_token_for_anonymous_requests(client) -> None:
    # when
    responses = [client.post("/api/auth/token/"), client.delete("/api/auth/token/")]

    # then
    assert [r.status_code for r in responses] == [403, 403]
    assert not Token.objects.exists()


def test_it_refuses_an_unknown_token_and_an_inactive_users_token(team, api) -> None:
    # given
    client = api(team.ana)
    team.ana.is_active = False
    team.ana.save()
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    # when / then
    assert client.get("/api/conversations/").status_code == 403
    assert stranger.get("/api/conversations/").status_code == 403


def test_it_checks_csrf_on_session_writes(team, make_conversation) -> None:
    # given: a browser session without the CSRF token
    conversation = make_conversation(Status.QUEUED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(team.ana)

    # when
    response = client.post(f"/api/conversations/{conversation.pk}/take-over/")

    # then
    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.status == Status.QUEUED


def test_it_makes_no_token_while_the_second_factor_is_pending(team, settings) -> None:
    # given: a supervisor who logged in with the password but has not enrolled a device yet
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = True
    client = Client()
    client.force_login(team.supervisor)

    # when
    response = client.post("/api/auth/token/")

    # then
    assert response.status_code == 403
    assert response.json() == {"detail": "Two-factor authentication is required."}
    assert not Token.objects.filter(user=team.supervisor).exists()


# --- Throttles ------------------------------------------------------------------------------------


def _rates(settings: Any, **rates: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_it_throttles_each_user_at_the_configured_rate(team, api, settings) -> None:
    # given
    _rates(settings, user="3/min")
    ana, bruno = api(team.ana), api(team.bruno)

    # when
    codes = [ana.get("/api/labels/").status_code for _ in range(4)]
    other = bruno.get("/api/labels/").status_code

    # then
    assert codes == [200, 200, 200, 429]
    assert other == 200


def test_it_throttles_sends_more_strictly(team, make_conversation, api, settings) -> None:
    # given
    _rates(settings, user="100/min", sends="2/min")
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    client = api(team.ana)
    url = f"/api/conversations/{conversation.pk}/messages/"

    # when
    codes = [client.post(url, {"text": f"Oi {n}"}, format="json").status_code for n in range(3)]
    reading = client.get(url).status_code

    # then
    assert codes == [201, 201, 429]
    assert reading == 200
    assert Message.objects.filter(conversation=conversation, direction=Message.Direction.OUT).count() == 2


# --- Schema and docs ------------------------------------------------------------------------------


def test_it_serves_the_schema_to_staff_only(team, api, client) -> None:
    # when
    anonymous = client.get("/api/schema/")
    staff = api(team.ana).get("/api/schema/", HTTP_ACCEPT="application/json")

    # then
    assert anonymous.status_code == 403
    assert staff.status_code == 200
    assert "/api/conversations/{id}/take-over/" in staff.json()["paths"]


def test_it_serves_the_docs_with_local_assets_and_no_inline_script(team, login) -> None:
    # given
    session = login(team.ana)

    # when
    page = session.get("/api/docs/")
    html = page.content.decode()
    init = session.get("/api/docs/?script=")

    # then
    assert page.status_code == 200
    assert "'unsafe-inline'" not in page["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    assert all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html
    sources = re.findall(r'src="([^"]+)"', html)
    assert all(src.startswith("/") for src in sources)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in init.content.decode()


def test_it_answers_options_on_every_route_without_a_server_error(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    client = api(team.supervisor)
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    # when
    codes = {path: client.options(path.replace("{id}", str(conversation.pk))).status_code for path in paths}

    # then
    assert {path: code for path, code in codes.items() if code >= 500} == {}
    assert codes["/api/conversations/{id}/take-over/"] == 200


def test_it_has_a_schema_without_warnings(tmp_path) -> None:
    # when / then: raises on any warning or validation error
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
