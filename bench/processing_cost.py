"""What applying one stored webhook event costs a worker, measured without the rest of the bench.

Wall-clock throughput needs a quiet machine; CPU time and statement counts do not. This loads
events into a fresh database of its own, shaped like ``make bench``'s (one text message per
body, 997 customers, signed with the inbox's secret, stored through the webhook's own INSERT),
then applies them the way a webhook worker does under a backlog (``processing.process_due``:
full batches, live events published to the channel layer) and reports, per applied event:

- statements sent through Django (what ``assertNumQueries`` counts, savepoints included; not
  the BEGIN and COMMIT psycopg sends for each batch: see ``batches``),
- CPU of this process (``time.process_time``),
- CPU of its PostgreSQL backend (``/proc/<pg_backend_pid()>/stat``; the server must run on
  this machine),
- Redis CPU (``INFO cpu``: the whole server, so only meaningful when nothing else uses it).

A warm-up pass first applies one event per customer (customers and conversations created, the
steady state the bench's sustained phases run in), then the measured pass applies the rest.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atende_cost REDIS_URL=redis://127.0.0.1:6379/13 \\
    .venv/bin/python bench/processing_cost.py --events 4000 [--profile out.prof]

The database named in DATABASE_URL is dropped and created again (refused unless its name has
"cost" or "bench" in it).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

TICKS = os.sysconf("SC_CLK_TCK")
SECRET = "bench-cost-secret"
PNID = "900000000000001"
CUSTOMERS = 997  # as bench/payloads.py


def _recreate_database(url: str) -> None:
    import psycopg
    from dj_database_url import parse

    name = parse(url)["NAME"]
    if "cost" not in name and "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: use a name with 'cost' or 'bench' in it")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _redis_cpu() -> float:
    from django.conf import settings

    if not settings.REDIS_URL:
        return 0.0
    import redis

    info = redis.Redis.from_url(settings.REDIS_URL).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _store(count: int, start: int, tag: str) -> None:
    from bench.payloads import body_for, sign
    from conversations.whatsapp import store

    for index in range(start, start + count):
        body = body_for(tag=tag, index=index, phone_number_id=PNID, display_number="15550000000", waba_id="1")
        store.store_event(body, signature=sign(body, SECRET), signature_valid=True, remote_addr="127.0.0.1")


def _apply_all() -> tuple[int, int]:
    """Apply everything due; (events applied, batches)."""
    from conversations import processing

    applied = batches = 0
    while True:
        done = processing.process_batch()
        if not done:
            return applied, batches
        applied += done
        batches += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4000, help="events measured (after the warm-up)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the measured pass here")
    parser.add_argument("--no-recreate", action="store_true", help="reuse the database as it is (already migrated)")
    parser.add_argument(
        "--no-receivers",
        action="store_true",
        help="disconnect other apps' receivers of conversations' signals (the bot's reply queueing...): intake alone",
    )
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database of this machine (it is dropped and recreated)")
    os.environ.setdefault("SECRET_KEY", "bench-processing-cost-not-a-secret-0123456789")
    if not args.no_recreate:
        _recreate_database(url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.dispatch import Signal

    from conversations.models import Inbox, Message, WebhookEvent

    if not args.no_recreate:
        call_command("migrate", verbosity=0)
    cache.clear()
    if args.no_receivers:
        from conversations import signals

        for signal in vars(signals).values():
            if isinstance(signal, Signal):
                signal.receivers.clear()
                signal.sender_receivers_cache.clear()
    Inbox.objects.update_or_create(
        phone_number_id=PNID,
        defaults={
            "name": "Cost",
            "display_number": "15550000000",
            "waba_id": "1",
            "access_token": "unused",
            "app_secret": SECRET,
            "verify_token": "unused",
        },
    )
    tag = f"C{int(time.time())}"
    # Warm-up: every customer's first message (customer and conversation created).
    _store(CUSTOMERS, 0, tag)
    _apply_all()
    _store(args.events, CUSTOMERS, tag)
    # A running server's autovacuum keeps the planner's statistics: without them the freshly
    # filled tables look empty to it, and it picks plans no steady state runs (the open
    # conversation lookup walked every open conversation of the inbox, 0.8 ms a message).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    statements = {"count": 0}

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements["count"] += 1
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    # CPU time, not wall time: the machine is shared, and waits for the server are not our CPU.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu0, backend0, redis0, wall0 = time.process_time(), _backend_cpu(backend), _redis_cpu(), time.perf_counter()
    with connection.execute_wrapper(count):
        if profiler:
            profiler.enable()
        applied, batches = _apply_all()
        if profiler:
            profiler.disable()
    cpu1, backend1, redis1, wall1 = time.process_time(), _backend_cpu(backend), _redis_cpu(), time.perf_counter()
    if profiler:
        profiler.dump_stats(args.profile)

    assert applied == args.events, (applied, args.events)
    done = WebhookEvent.objects.filter(state="done").count()
    assert done == CUSTOMERS + args.events, done
    assert Message.objects.count() == CUSTOMERS + args.events
    per = 1000.0 / applied
    result = {
        "events": applied,
        "batches": batches,
        "batch_size": settings.WEBHOOK_BATCH_SIZE,
        "statements_per_event": round(statements["count"] / applied, 2),
        "worker_cpu_ms_per_event": round((cpu1 - cpu0) * per, 3),
        "backend_cpu_ms_per_event": round((backend1 - backend0) * per, 3),
        "redis_cpu_ms_per_event": round((redis1 - redis0) * per, 3),
        "wall_ms_per_event": round((wall1 - wall0) * per, 3),
        "receivers": not args.no_receivers,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
