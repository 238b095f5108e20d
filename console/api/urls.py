"""The API under ``/api/`` (mounted in config/urls.py), with its schema and docs."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from console.api import catalog, views

router = SimpleRouter()
router.register("conversations", views.ConversationViewSet, basename="api-conversation")
router.register("customers", catalog.CustomerViewSet, basename="api-customer")
router.register("canned-responses", catalog.CannedResponseViewSet, basename="api-canned-response")
router.register("labels", catalog.LabelViewSet, basename="api-label")
router.register("templates", catalog.MessageTemplateViewSet, basename="api-template")

urlpatterns = [
    path("conversations/<int:pk>/messages/", views.MessageListView.as_view(), name="api-messages"),
    path("conversations/<int:pk>/messages/media/", views.SendMediaView.as_view(), name="api-send-media"),
    path("conversations/<int:pk>/messages/template/", views.SendTemplateView.as_view(), name="api-send-template"),
    path("auth/token/", catalog.TokenView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI with its init script as a file of its own (the split view): the
    # Content-Security-Policy forbids inline scripts.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="console/api/swagger_ui.html"),
        name="api-docs",
    ),
    *router.urls,
    # Anything else under /api/ (an id that is not a number, a typo) answers in JSON, like
    # the rest of the API, not with the site's HTML 404 page.
    re_path(r"", views.not_found),
]
