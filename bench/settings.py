"""Bench-only settings: the product's settings, with a URLconf that adds an empty view and a
statement counter (bench/querycount.py).

Everything else (middleware, database, Redis, Celery) is the product's, so the empty view
measures the ceiling of the same server setup the webhook runs in.
"""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Counts SQL statements per process role for the bench's queries-per-message figure.
INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.BenchConfig"]  # noqa: F405
