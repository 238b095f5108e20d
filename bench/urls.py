"""The product's URLs plus /bench/empty/, which exists only under bench.settings."""

from __future__ import annotations

from django.urls import path

from bench import views
from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("bench/empty/", views.empty, name="bench-empty"),
    *product_urlpatterns,
]
