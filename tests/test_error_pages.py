"""404 and 500 pages: Portuguese, in the site's layout, with DEBUG off."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


# A URLconf with one view that fails, on top of the real one.
urlpatterns = [path("boom/", boom), path("", include("config.urls"))]


@pytest.mark.django_db
def test_it_answers_404_in_portuguese_in_the_site_layout(client: Client, settings: Any) -> None:
    # given
    settings.DEBUG = False

    # when: from a browser that asks for English
    response = client.get("/nada-aqui/", HTTP_ACCEPT_LANGUAGE="en")

    # then
    assert response.status_code == 404
    html = response.content.decode()
    assert '<html lang="pt-br">' in html
    assert "<title>Página não encontrada · Atende</title>" in html
    assert "Lamentamos, mas a página requisitada não pode ser encontrada." in html
    assert "/static/css/app.css" in html
    assert "Not Found" not in html


@pytest.mark.django_db
def test_it_answers_404_in_english_for_a_user_who_chose_english(client: Client, settings: Any) -> None:
    settings.DEBUG = False
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})

    response = client.get("/nada-aqui/")

    assert response.status_code == 404
    assert "<title>Page not found · Atende</title>" in response.content.decode()


@pytest.mark.django_db
def test_it_answers_500_in_portuguese_in_the_site_layout(client: Client, settings: Any) -> None:
    # given
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False

    # when
    response = client.get("/boom/", HTTP_ACCEPT_LANGUAGE="en")

    # then
    assert response.status_code == 500
    html = response.content.decode()
    assert '<html lang="pt-br">' in html
    assert "<title>Erro no servidor · Atende</title>" in html
    assert "/static/css/app.css" in html
    assert "Server Error (500)" not in html
