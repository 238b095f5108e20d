"""Queue Celery tasks by name once the current transaction commits.

The one module that talks to the broker for the services: nothing imports ``tasks.py`` (it
imports the services, so importing it back would be a loop). A task that starts before its
row is committed would not find it, hence ``on_commit``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

SEND_MESSAGE = "conversations.tasks.send_message"
MARK_READ = "conversations.tasks.mark_message_read"
DOWNLOAD_MEDIA = "conversations.tasks.download_media"
PROCESS_WEBHOOK_EVENT = "conversations.tasks.process_webhook_event"


def task(name: str) -> Any:
    """The registered task ``name``; the tasks modules are imported on first use."""
    app = current_app
    if name not in app.tasks:
        app.loader.import_default_modules()
    return app.tasks[name]


def eager() -> bool:
    """Tasks run inline (the embedded mode, the tests), not in a worker."""
    return bool(current_app.conf.task_always_eager)


def enqueue(name: str, *args: Any, **options: Any) -> bool:
    """Queue a task now; never raise. If the broker is down the row is already committed and a
    periodic sweep (or a manual command) picks it up, so the caller carries on."""
    try:
        task(name).apply_async(args=args, **options)
        return True
    except Exception as exc:
        logger.warning("could not queue %s%r: %s", name, args, exc)
        return False


def enqueue_on_commit(name: str, *args: Any, **options: Any) -> None:
    transaction.on_commit(lambda: enqueue(name, *args, **options))


def run_or_queue(ids: list[int], name: str, run: Any, *, queue: bool) -> dict[str, int]:
    """For the manual commands: queue task ``name`` for each id, or run it here; count outcomes."""
    results: dict[str, int] = {}
    for pk in ids:
        if queue:
            enqueue(name, pk)
            result = "queued"
        else:
            result = run(pk)
        results[result] = results.get(result, 0) + 1
    return results
