"""ASGI entry point: daphne serves WebSockets (and HTTP too in the embedded mode)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before the routing modules import models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.warmup import settle  # noqa: E402
from console.routing import websocket_urlpatterns as console_routes  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*console_routes, *websocket_urlpatterns]))
        ),
    }
)

# Loaded up front and kept out of the garbage collector's walks (config/warmup.py).
settle()
