"""The console's URLs, under /console/ (namespace "console"). Each module owns its routes."""

from __future__ import annotations

from console import actions, lists, presence, timeline

app_name = "console"
urlpatterns = [*lists.urlpatterns, *timeline.urlpatterns, *actions.urlpatterns, *presence.urlpatterns]
