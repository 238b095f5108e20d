"""The console's websocket route (config/asgi.py mounts it under the origin check and the
session authentication)."""

from __future__ import annotations

from django.urls import path

from console.consumers import ConsoleConsumer

websocket_urlpatterns = [path("ws/console/", ConsoleConsumer.as_asgi())]
