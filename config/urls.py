from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import views

# The app list beside every page took a quarter of a 1280px screen from the lists (messages,
# events) that need it; the breadcrumbs and the index lead everywhere it did.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    # Webhooks first: the busiest URL resolves without trying the others.
    path("", include("conversations.urls")),
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("console/", include("console.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
