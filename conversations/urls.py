from __future__ import annotations

from django.urls import path

from conversations import views

urlpatterns = [
    path("webhooks/whatsapp/", views.whatsapp_webhook, name="whatsapp-webhook"),
]
