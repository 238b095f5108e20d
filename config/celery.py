"""Celery application. Configuration lives in settings.py under the CELERY_ prefix."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("atende")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _settle(**kwargs: object) -> None:
    """Each pool process loads what it will use and freezes it (config/warmup.py)."""
    from config.warmup import settle

    settle()


# A worker keeps its database connections from one task to the next, as a web process keeps them
# from one request to the next (settings.CELERY_DB_REUSE_MAX turns off the Celery fixup's
# closing them around every task): reconnecting cost each task a PostgreSQL backend's start and
# the connection's setup, several milliseconds of a bot's reply. Inline (eager) tasks run inside
# their caller's request or transaction and are left alone.


def _eager(task: Any) -> bool:
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


@task_prerun.connect
def _connections_before_task(sender: Any = None, **kwargs: Any) -> None:
    """Close what is too old or failed (DB_CONN_MAX_AGE; Django's rule between requests), and
    check a kept connection before its first use in this task (PostgreSQL may have restarted
    while the worker waited: one ``SELECT 1``, instead of the task failing on it)."""
    if _eager(sender):
        return
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
        if connection.connection is not None:
            connection.health_check_enabled = True


@task_postrun.connect
def _connections_after_task(sender: Any = None, **kwargs: Any) -> None:
    if _eager(sender):
        return
    from django.db import close_old_connections

    close_old_connections()
