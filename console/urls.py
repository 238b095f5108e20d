"""The console's URLs, under /console/ (namespace "console"). Each module owns its routes."""

from __future__ import annotations

from console import actions, bots_try, lists, presence, timeline

app_name = "console"
urlpatterns = [
    *lists.urlpatterns,
    *timeline.urlpatterns,
    *actions.urlpatterns,
    *presence.urlpatterns,
    *bots_try.urlpatterns,
]
