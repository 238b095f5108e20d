"""Celery's queues and schedules: separate queues that compose and the bench really consume,
and periodic tasks that expire instead of piling up."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def routed_queues() -> set[str]:
    return {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}


def compose_workers() -> dict[str, set[str]]:
    """Service name -> the queues its `celery worker -Q` consumes."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    workers = {}
    for name, service in services.items():
        command = service.get("command") or []
        if "celery" in command and "worker" in command:
            workers[name] = set(command[command.index("-Q") + 1].split(","))
    return workers


@pytest.mark.django_db
def test_it_makes_every_periodic_task_expire_under_the_database_scheduler() -> None:
    # given: beat's scheduler as configured (django-celery-beat reads the schedule into rows)
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app

    # when
    entries = {
        name: ModelEntry.from_entry(name, app=app, **entry) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    }

    # then: each sends its task with an expiry no longer than its interval
    for name, entry in entries.items():
        interval = settings.CELERY_BEAT_SCHEDULE[name]["schedule"]
        assert 0 < entry.options.get("expires", 0) <= max(2.0, 2 * interval), name


def test_it_runs_the_per_second_sweep_on_its_own_queue() -> None:
    assert settings.CELERY_TASK_ROUTES["conversations.tasks.dispatch_webhook_events"] == {"queue": "dispatch"}
    queues = {
        name: settings.CELERY_TASK_ROUTES[f"conversations.tasks.{name}"]["queue"]
        for name in ("process_webhooks", "send_message", "mark_message_read", "download_media")
    }
    assert queues == {
        "process_webhooks": "webhooks",
        "send_message": "sending",
        "mark_message_read": "sending",
        "download_media": "media",
    }
    assert settings.CELERY_TASK_ROUTES["bots.tasks.*"] == {"queue": "bots"}


def test_it_consumes_every_queue_in_compose_with_separate_workers() -> None:
    workers = compose_workers()

    # every queue has a worker; webhook processing, sending and bots never share one
    assert set().union(*workers.values()) == routed_queues()
    owner = {queue: name for name, queues in workers.items() for queue in queues}
    assert len({owner["webhooks"], owner["sending"], owner["bots"]}) == 3
    # the per-second sweep never waits behind sends or LLM calls
    assert owner["dispatch"] == owner["webhooks"]


def test_it_runs_the_listener_and_beat_in_compose() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]

    commands = [" ".join(service.get("command") or []) for service in services.values()]

    # niced like the worker it wakes
    assert "nice -n 10 python manage.py listen_webhooks" in commands
    assert any(command.startswith("celery -A config beat") for command in commands)


def test_it_gives_webhook_processing_less_cpu_weight_than_the_web_in_compose() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    default = 1024  # docker's weight for a container without cpu_shares

    # A process's nice counts only against processes of its own container (cgroup): across
    # containers only the container's weight gives the acknowledgements the CPU first.
    web = services["web"].get("cpu_shares", default)
    assert services["worker-webhooks"]["cpu_shares"] < web / 4
    assert services["listener"]["cpu_shares"] < web / 4
    assert services["postgres"].get("cpu_shares", default) >= web


def test_it_lowers_the_bench_processing_scheduling_group_not_only_its_nice() -> None:
    script = (ROOT / "bench" / "run.sh").read_text()

    # Every server runs in its own session (setsid), so its own autogroup: the group's nice is
    # what the kernel weighs against gunicorn's, as cpu_shares does for compose's containers.
    assert "/proc/self/autogroup" in script
    assert re.search(r"start_niced webhooks .*worker -Q webhooks", script)
    assert re.search(r"start_niced listener .*listen_webhooks", script)


def test_it_consumes_every_queue_and_runs_the_listener_in_the_bench() -> None:
    script = (ROOT / "bench" / "run.sh").read_text()

    consumed = {queue for match in re.findall(r"worker -Q ([\w,]+)", script) for queue in match.split(",")}
    assert consumed == routed_queues()
    assert "manage.py listen_webhooks" in " ".join(shlex.split(script, comments=True))


# --- Database connections between tasks (PostgreSQL: SQLite's in-memory test database is never
# closed) ----------------------------------------------------------------------------------------


@pytest.fixture
def worker_signals():  # type: ignore[no-untyped-def]
    """A worker's task signals as a Celery worker installs them (its Django fixup, our
    config/celery.py handlers), and a function that runs one non-eager task's worth of work."""
    from celery.fixups.django import DjangoWorkerFixup
    from celery.signals import task_postrun, task_prerun

    from bots.tasks import reply as task
    from config.celery import app

    fixup = DjangoWorkerFixup(app)
    fixup.install()

    def run_task(work) -> None:  # type: ignore[no-untyped-def]
        task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})
        try:
            work()
        finally:
            task_postrun.send(sender=task, task_id="t", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")

    yield run_task
    task_prerun.disconnect(fixup.on_task_prerun)
    task_postrun.disconnect(fixup.on_task_postrun)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_one_task_to_the_next(worker_signals) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection

    from conversations.models import Inbox

    # given: a connection opened by an earlier task
    worker_signals(lambda: list(Inbox.objects.all()))
    first = connection.connection

    # when: three more tasks
    for _ in range(3):
        worker_signals(lambda: list(Inbox.objects.all()))

    # then: the same connection (Celery's fixup alone closed it around every task)
    assert first is not None
    assert connection.connection is first


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_drops_a_connection_older_than_its_max_age(worker_signals, settings) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection

    from conversations.models import Inbox

    # given: a connection past DB_CONN_MAX_AGE
    worker_signals(lambda: list(Inbox.objects.all()))
    first = connection.connection
    connection.close_at = 0.0

    # when
    worker_signals(lambda: list(Inbox.objects.all()))

    # then: a new one
    assert connection.connection is not None
    assert connection.connection is not first


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_that_died_while_the_worker_waited_is_replaced_before_the_task_uses_it(
    worker_signals,  # type: ignore[no-untyped-def]
) -> None:
    from django.db import connection

    from conversations.models import Inbox

    # given: a kept connection that the server ended meanwhile (a PostgreSQL restart)
    worker_signals(lambda: list(Inbox.objects.all()))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    from django.db import connections

    with connections["default"].copy().cursor() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    # when: the next task reads
    found: list = []
    worker_signals(lambda: found.extend(Inbox.objects.all()))

    # then: it ran on a new connection instead of failing
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_the_broker_down_helper_leaves_the_app_registered_for_shared_tasks_imported_later() -> None:
    # given
    from celery._state import _get_active_apps

    from config.celery import app
    from tests.conftest import broker_down

    # when
    with broker_down():
        pass

    # then: a shared_task defined after this still registers with the app
    assert app in list(_get_active_apps())
