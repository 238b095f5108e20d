"""A webhook worker killed mid-batch: every event is still applied exactly once, within
seconds of the next worker starting (it used to wait 10 minutes for a re-queue)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction

from conversations import tasks
from conversations.models import Message, WebhookEvent
from conversations.whatsapp import store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, text_payload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 40
BATCH = 10


def start_worker(log: Path) -> subprocess.Popen:
    """A real Celery worker on the test database and the test Redis, consuming only the
    webhooks queue, in its own process group (SIGKILL takes its pool child with it)."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": django_settings.REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(40),
        "WEBHOOK_BATCH_SIZE": str(BATCH),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "webhooks", "--concurrency", "1"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"]
    command += ["--hostname", f"killtest-{secrets.token_hex(3)}@%h"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def wait_for(check: Callable[[], bool], timeout: float, *, tick: Callable[[], object] = lambda: None) -> float:
    """Poll ``check`` (calling ``tick`` between polls, as beat would); return the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        tick()
        time.sleep(0.1)
    return time.monotonic() - started


def done() -> int:
    return WebhookEvent.objects.filter(state="done").count()


def locked_pending() -> int:
    """Pending events some worker holds right now (rows another transaction has locked)."""
    with transaction.atomic():
        free = len(WebhookEvent.objects.filter(state="pending").select_for_update(skip_locked=True).values_list("pk"))
        return WebhookEvent.objects.filter(state="pending").count() - free


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """Tasks go to the test Redis, where the worker subprocesses consume them."""
    from config.celery import app

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.flushdb()
    app.conf.task_always_eager = False
    yield client
    app.conf.task_always_eager = True
    client.flushdb()
    client.close()


def test_it_applies_every_event_exactly_once_after_a_worker_is_killed_mid_batch(inbox, broker, tmp_path) -> None:
    # given: inserts slowed to 30 ms a message, so a batch of 10 takes a third of a second
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$
            BEGIN PERFORM pg_sleep(0.03); RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_slow_insert BEFORE INSERT ON conversations_message
              FOR EACH ROW EXECUTE FUNCTION test_slow_insert();
            """
        )
    log = tmp_path / "worker.log"
    workers: list[subprocess.Popen] = []
    try:
        for i in range(EVENTS):
            raw = json.dumps(text_payload(f"wamid.KILL{i:02d}", wa_id=f"55119{i:08d}")).encode()
            store.store_event(raw, signature=sign(raw, TEST_SECRET), signature_valid=True, remote_addr=None)
        workers.append(start_worker(log))

        # when: beat's sweep wakes the worker; it is killed while a batch is open (some
        # events committed, others locked by its transaction)
        wait_for(lambda: done() >= BATCH and locked_pending() > 0, timeout=30, tick=tasks.dispatch_webhook_events)
        kill(workers[0])
        applied_before_kill = done()

        # then: the database rolled the open batch back and unlocked its rows
        wait_for(lambda: locked_pending() == 0, timeout=5)
        assert BATCH <= done() == applied_before_kill < EVENTS

        # when: another worker starts, beat's sweep running as usual
        workers.append(start_worker(log))
        took = wait_for(lambda: done() == EVENTS, timeout=25, tick=tasks.dispatch_webhook_events)

        # then: everything applied once, within seconds (worker start-up included)
        assert took < 20
        assert set(WebhookEvent.objects.values_list("state", "attempts")) == {("done", 1)}
        assert Message.objects.count() == EVENTS
        assert len(set(Message.objects.values_list("wamid", flat=True))) == EVENTS
    finally:
        for worker in workers:
            kill(worker)
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_slow_insert ON conversations_message; DROP FUNCTION test_slow_insert();")
        if log.exists():
            sys.stdout.write(log.read_text()[-3000:])
