"""WebSocket routes. The live console adds its consumers here; intake already publishes the
events they will forward (see conversations/events.py)."""

from __future__ import annotations

websocket_urlpatterns: list = []
