"""The demo answers only in the embedded mode: every view of this app goes through ``demo_only``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse


def demo_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """404 unless ``settings.DEMO_ENABLED`` (never true in production): outside the demo these
    URLs must look like they do not exist, not like something that refuses."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.DEMO_ENABLED:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper
