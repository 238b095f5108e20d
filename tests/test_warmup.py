"""Server processes load what they will use up front and keep it out of the garbage collector's
walks (config/warmup.py): checked in a fresh process per entry point, as the servers start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

REPORT = """
import gc, json
from django.template import engines
def cached(loaders):
    for loader in loaders:
        if hasattr(loader, "get_template_cache"):
            return loader.get_template_cache
        found = cached(getattr(loader, "loaders", ()))
        if found is not None:
            return found
cache = cached(engines["django"].engine.template_loaders) or {}
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "thresholds": list(gc.get_threshold()),
    "templates": sorted(key if isinstance(key, str) else str(key[0]) for key in cache),
}))
"""


def _report(prelude: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)  # the embedded mode: nothing to reach
    result = subprocess.run(
        [sys.executable, "-c", prelude + REPORT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", ["config.wsgi", "config.asgi"])
def test_a_server_entry_point_loads_the_templates_and_freezes_what_it_loaded(entry: str) -> None:
    # when: gunicorn or daphne imports the application
    report = _report(f"import {entry}\n")

    # then: the console's templates are compiled, and everything loaded is frozen
    assert {"console/conversation.html", "console/list.html", "console/live.html"} <= set(report["templates"])
    assert report["frozen"] > 10_000
    assert report["thresholds"] == [700, 10, 1000]


def test_a_celery_pool_process_settles_when_it_starts() -> None:
    # when: a prefork pool process starts (Celery sends worker_process_init in it)
    report = _report(
        "import django\ndjango.setup()\nfrom config.celery import app\n"
        "from celery.signals import worker_process_init\nworker_process_init.send(sender=None)\n"
    )

    # then
    assert report["frozen"] > 10_000
    assert "console/live.html" in report["templates"]


def test_a_process_that_did_not_settle_has_nothing_frozen() -> None:
    # given / when: Django set up, no server entry point
    report = _report("import django\ndjango.setup()\n")

    # then: the check above is not vacuous
    assert report["frozen"] == 0
    assert report["thresholds"] != [700, 10, 1000]
