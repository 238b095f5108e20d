"""WSGI entry point: the production HTTP server (gunicorn) serves pages, the API and webhooks."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Loaded up front and kept out of the garbage collector's walks (config/warmup.py); gunicorn
# preloads the application, so its workers fork from a settled master.
from config.warmup import settle  # noqa: E402

settle()
