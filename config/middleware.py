"""Project middleware: the interface language, and the request's access scope.

The interface language is the user's choice, never the browser's.

Django's LocaleMiddleware falls back to the Accept-Language header, so the same admin page
came out in English on one attendant's computer and in Portuguese on the next. Atende is
Brazilian Portuguese (LANGUAGE_CODE) unless the user picks another language at
/i18n/setlang/, which stores the choice in the language cookie.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from conversations import access


def chosen_language(request: HttpRequest) -> str:
    """The language the user picked (the cookie set by /i18n/setlang/), else LANGUAGE_CODE."""
    code = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if code:
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            pass  # a stale or forged cookie: ignore it
    return settings.LANGUAGE_CODE


class UserLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = chosen_language(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response


class AccessScopeMiddleware:
    """Remember each user's memberships for the length of the request
    (``conversations.access.remembering_roles``): a page asks for the viewer's role from several
    places, and each asking was a query."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with access.remembering_roles():
            return self.get_response(request)
