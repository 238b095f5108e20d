"""The interface language is pt-BR unless the user picks another one; the browser never decides."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client


@pytest.mark.django_db
def test_it_answers_in_portuguese_whatever_the_browser_asks(client: Client) -> None:
    # when: a browser set up in English
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")

    # then
    assert response.status_code == 200
    assert response.headers["Content-Language"] == "pt-br"
    assert '<html lang="pt-br"' in response.content.decode()
    assert "Accept-Language" not in response.headers.get("Vary", "")


@pytest.mark.django_db
def test_it_answers_in_english_once_the_user_picks_it(client: Client) -> None:
    # given
    chosen = client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    assert chosen.status_code == 302

    # when: even from a browser that prefers Portuguese
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="pt-BR,pt;q=0.9")

    # then
    assert response.headers["Content-Language"] == "en"
    assert '<html lang="en"' in response.content.decode()


@pytest.mark.django_db
def test_it_goes_back_to_portuguese_when_the_user_picks_it_again(client: Client) -> None:
    client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    client.post("/i18n/setlang/", {"language": "pt-br", "next": "/admin/login/"})

    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.headers["Content-Language"] == "pt-br"


@pytest.mark.django_db
def test_it_ignores_a_language_cookie_it_does_not_offer(client: Client) -> None:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"

    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.headers["Content-Language"] == "pt-br"
