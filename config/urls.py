from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import security, views
from console import accounts

# The app list beside every page took a quarter of a 1280px screen from the lists (messages,
# events) that need it; the breadcrumbs and the index lead everywhere it did.
admin.site.enable_nav_sidebar = False
# The admin also needs the second factor where it is required (on top of the role check that
# conversations/admin.py installs; admins are loaded before this module).
admin.site.has_permission = security.admin_permission(admin.site.has_permission)

urlpatterns = [
    # Webhooks first: the busiest URL resolves without trying the others.
    path("", include("conversations.urls")),
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("console/", include("console.urls")),
    # The customer's phone and the Graph API stand-in: 404 unless DEMO_ENABLED (embedded mode).
    path("demo/", include("demo.urls")),
    path("accounts/", include(accounts.urlpatterns)),
    path("i18n/", include("django.conf.urls.i18n")),
    # The API, its schema (/api/schema/) and docs (/api/docs/): console/api/urls.py.
    path("api/", include("console.api.urls")),
]
# No public /media/ route, not even with DEBUG: customers' files are served only by
# console:media, after an access check.
