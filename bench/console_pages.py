"""p95 of the console's pages with 100,000 conversations and about 1,000,000 messages.

    .venv/bin/python bench/console_pages.py --build 100000   # drop, migrate, seed (~10 min), measure
    .venv/bin/python bench/console_pages.py                  # measure an already built database

The database is a dedicated PostgreSQL one (``BENCH_CONSOLE_DATABASE_URL``, default
``atende_console_bench`` on 127.0.0.1), built with ``manage.py seed_demo --scale N``; Redis db
13 (``BENCH_CONSOLE_REDIS_URL``) so production mode has its broker and channel layer. Pages are
requested in this process through Django's test client, with the product's settings in
production mode (PostgreSQL, middleware, templates, no debug, the process settled as
gunicorn's workers are: ``config.warmup.settle``), logged in with ``force_login``
as a supervisor of two inboxes and as an attendant (the second factor is not required here, so
its redirect does not stand in the way; its device lookups still run). Each case: warm-up
requests, then ``--requests`` timed ones (wall clock of ``client.get``, the whole response
rendered), searches rotating over realistic terms. The figures go to stdout as a Markdown
table (and to ``--out``), for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/atende_console_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SUPERVISOR = "scale_supervisora1"
ATTENDANT = "scale_atendente01"
# Realistic searches: a first name typed without its accent, a product without accents, a
# surname, a phone fragment, a common word, two words.
SEARCHES = ("joao", "acucar", "magalhaes", "98765", "pedido", "troca tela", "conceicao", "garantia")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = os.environ.get("BENCH_CONSOLE_DATABASE_URL", DEFAULT_DB)
    env["REDIS_URL"] = os.environ.get("BENCH_CONSOLE_REDIS_URL", DEFAULT_REDIS)
    env.setdefault("SECRET_KEY", "bench-console-only-" + "x" * 40)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["OTP_REQUIRED_FOR_STAFF_ROLES"] = "false"
    env["SECURE_SSL_REDIRECT"] = "false"
    env["SECURE_COOKIES"] = "false"
    env.pop("DEMO_PASSWORD", None)
    return env


def build(n: int, env: dict[str, str]) -> None:
    url = env["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", admin, "-qc", sql], check=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True, env=env, cwd=ROOT)
    started = time.monotonic()
    subprocess.run([*manage, "seed_demo", "--scale", str(n)], check=True, env=env, cwd=ROOT)
    print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
    subprocess.run(["psql", url, "-qc", "VACUUM ANALYZE"], check=True)


class StatementCounter:
    """A connection.execute_wrapper counting the statements of one request."""

    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements += 1
        return execute(sql, params, many, context)


@dataclass
class Result:
    who: str
    page: str
    times: list[float]
    queries: int
    rows: int
    # CPU time of this process per request (time.process_time): what the page costs in Python,
    # whatever else the shared machine is doing (the wall clock also counts the waits).
    cpu: list[float]

    def pct(self, p: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.times if values is None else values)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def measure(requests: int, warmup: int) -> list[Result]:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    # As gunicorn's workers start (config/wsgi.py): templates loaded, the garbage collector's
    # thresholds and frozen start-up objects as in production.
    from config.warmup import settle

    settle()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from conversations import access

    User = get_user_model()
    results = []
    for who, username in (("supervisor", SUPERVISOR), ("attendant", ATTENDANT)):
        user = User.objects.get(username=username)
        client = Client()
        client.force_login(user)
        cases: list[tuple[str, list[str]]] = [
            ("queue", ["/console/?view=queue"]),
            ("mine", ["/console/?view=mine"]),
            ("with the bot", ["/console/?view=bot"]),
        ]
        if who == "supervisor":
            cases.append(("all", ["/console/?view=all"]))
            cases.append(("all, page 20", ["/console/?view=all&page=20"]))
            cases.append(("all, one label", ["/console/?view=all&label=1"]))
            cases.append(("search (all)", [f"/console/?view=all&q={q}" for q in SEARCHES]))
        cases.append(("search (queue)", [f"/console/?view=queue&q={q}" for q in SEARCHES]))
        try:
            reverse("console:conversation", args=[1])
            # The conversations this user is most likely to open: the newest they may act on.
            ids = list(access.writable_conversations_for(user).recent_first().values_list("pk", flat=True)[:20])
            cases.append(("conversation", [f"/console/c/{pk}/" for pk in ids]))
        except NoReverseMatch:
            print("no console:conversation view yet: the conversation page is not measured", flush=True)
        for page, urls in cases:
            for i in range(warmup):
                client.get(urls[i % len(urls)])
            # Statements of one request, counted at the driver (the test client's request
            # signals reset Django's own query log).
            count = StatementCounter()
            with connection.execute_wrapper(count):
                response = client.get(urls[0])
            assert response.status_code == 200, (page, response.status_code, urls[0])
            rows = response.content.decode().count('id="conversation-row-')
            times, cpu = [], []
            for i in range(requests):
                url = urls[i % len(urls)]
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
                assert response.status_code == 200, (page, response.status_code, url)
            result = Result(who, page, times, count.statements, rows, cpu)
            print(
                f"{who:10} {page:16} p50 {result.pct(50):6.1f} ms  p95 {result.pct(95):6.1f} ms  "
                f"CPU p50 {result.pct(50, cpu):6.1f} ms  p95 {result.pct(95, cpu):6.1f} ms",
                flush=True,
            )
            results.append(result)
    return results


def table(results: list[Result], requests: int) -> str:
    lines = [
        "| user | page | p50 ms | p95 ms | max ms | CPU p50 / p95 ms | SQL queries | rows shown | requests |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.who} | {r.page} | {r.pct(50):.1f} | {r.pct(95):.1f} | {max(r.times) * 1000:.1f} | "
            f"{r.pct(50, r.cpu):.1f} / {r.pct(95, r.cpu):.1f} | {r.queries} | {r.rows} | {requests} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--build", type=int, default=0, metavar="N", help="drop and rebuild the database with N conversations"
    )
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument(
        "--build-if-missing",
        type=int,
        default=0,
        metavar="N",
        help="build the database with N conversations only when it does not hold that many yet",
    )
    parser.add_argument("--doc", type=Path, help="replace the run between the console-pages markers of this file")
    args = parser.parse_args()
    env = environment()
    if args.build:
        build(args.build, env)
    elif args.build_if_missing and conversations_in(env["DATABASE_URL"]) < args.build_if_missing:
        build(args.build_if_missing, env)
    os.environ.update(env)
    print(f"load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    results = measure(args.requests, args.warmup)
    from conversations.models import Conversation, Message

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    header = (
        f"{Conversation.objects.count():,} conversations, {Message.objects.count():,} messages "
        f"(PostgreSQL {os.environ['DATABASE_URL'].rsplit('/', 1)[1]}); load average at the end "
        f"{load} on {os.cpu_count()} CPUs (the machine is shared)"
    )
    text = header + "\n\n" + table(results, args.requests) + "\n"
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    if args.doc:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_doc(args.doc, f"{MARK_START}\n### Run {when}\n\n{text}{MARK_END}")
        print(f"written to {args.doc}")


MARK_START = "<!-- console-pages:start -->"
MARK_END = "<!-- console-pages:end -->"


def write_doc(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def conversations_in(url: str) -> int:
    """How many conversations the benchmark database holds (0 when it does not exist yet)."""
    answer = subprocess.run(
        ["psql", url, "-Atqc", "SELECT count(*) FROM conversations_conversation"], capture_output=True, text=True
    )
    return int(answer.stdout.strip()) if answer.returncode == 0 and answer.stdout.strip().isdigit() else 0


if __name__ == "__main__":
    main()
