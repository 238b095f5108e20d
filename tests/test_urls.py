"""The site's root and what is never exposed publicly."""

from __future__ import annotations

import importlib

import pytest
from django.urls import Resolver404, resolve

pytestmark = pytest.mark.django_db


def test_it_sends_the_root_to_the_console(client) -> None:
    # given / when
    response = client.get("/")

    # then
    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_it_serves_no_stored_file_from_a_public_url(settings) -> None:
    # Customers' files are served only by console:media, after an access check; the URLconf is
    # read again with DEBUG on, where Django's static() helper would have added a route.
    import config.urls

    settings.DEBUG = True
    try:
        urlconf = importlib.reload(config.urls)
        with pytest.raises(Resolver404):
            resolve(settings.MEDIA_URL + "whatsapp/2026/11/some-file.jpg", urlconf=urlconf)
    finally:
        settings.DEBUG = False
        importlib.reload(config.urls)
