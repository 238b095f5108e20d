"""Bot reply benchmark (issue 8): our own time from a customer's webhook to the bot's reply
reaching Meta, with an instant language model and an instant Graph API.

    .venv/bin/python -m bench.bot_reply            # about 3 minutes; writes docs/benchmarks.md
    .venv/bin/python -m bench.bot_reply --no-doc   # print only

It starts the production setup as compose.yaml runs it, each in its own process group on
127.0.0.1 only: a fresh PostgreSQL database (``atende_bench_bot``), Redis db 12 (flushed),
gunicorn (the webhook), the niced webhook worker (``-Q webhooks,dispatch``), the listener, the
sending worker (``-Q sending,media,celery``) and the bots worker (``-Q bots``, ``--concurrency``
2: "2 workers"). In this process run two stand-ins, each a threaded HTTP server: an
OpenAI-compatible provider that answers every chat completion at once
(``tests/fake_openai.py``), and a Graph API sink that accepts every send at once and records
when each reply arrived. The inbox's bot points at the provider, with no wait for more lines
(``burst_seconds`` 0), always open, no rating.

Each webhook message comes from a new customer (a fresh conversation, the bot's first turn).
Phases, open loop: ``--rates`` (5, 10, 20 msg/s) for ``--duration`` (20 s) each; then a
burst of ``--burst`` (400) messages at 200 msg/s for the replies per second the two bot
worker processes sustain. Latency runs from each webhook request's *due* time to its reply's
arrival at the Graph sink: everything on the way is ours, since both stand-ins answer in well
under a millisecond (their own time is measured and reported). It is split at the stored
inbound message (webhook to processed), the bot turn's record (``BotRun.created``: the turn
done, reply stored) and the sink.

Target: p50 <= 50 ms of our own overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import console_ws

ROOT = Path(__file__).resolve().parent.parent
PY = os.environ.get("PYTHON", str(ROOT / ".venv" / "bin" / "python"))
MARK_START = "<!-- bot-reply:start -->"
MARK_END = "<!-- bot-reply:end -->"
FIRST_CUSTOMER = 5511940000000


class GraphSink:
    """Meta's messages endpoint, answering at once; keeps (arrival, recipient, type) per send."""

    def __init__(self) -> None:
        self.sends: list[tuple[float, str, str]] = []
        self.handling: list[float] = []
        self._lock = threading.Lock()
        self._counter = iter(range(1, 10**9))
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle on, the second waits for the
            # client's delayed ACK (about 40 ms), a delay no real server adds.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                started = time.perf_counter()
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    data = {}
                kind = str(data.get("type") or data.get("status") or "")
                with sink._lock:
                    number = next(sink._counter)
                    if data.get("to"):
                        sink.sends.append((arrived, str(data["to"]).lstrip("+"), kind))
                answer = {"messaging_product": "whatsapp", "success": True}
                if data.get("to"):
                    answer = {
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": data["to"], "wa_id": data["to"]}],
                        "messages": [{"id": f"wamid.BENCHBOT{number:09d}"}],
                    }
                raw = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                with sink._lock:
                    sink.handling.append(time.perf_counter() - started)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v23.0"

    def replies(self) -> dict[str, float]:
        """Recipient -> arrival of the first text or interactive message sent to them."""
        first: dict[str, float] = {}
        with self._lock:
            for arrived, to, kind in self.sends:
                if kind in ("text", "interactive") and to not in first:
                    first[to] = arrived
        return first


class Stack(console_ws.Stack):
    """bench/console_ws.py's production setup (environment, fresh database, process groups),
    with the Graph API at the sink and this bench's own processes."""

    def __init__(self, args: argparse.Namespace, graph_url: str) -> None:
        super().__init__(args)
        self.work = Path(tempfile.mkdtemp(prefix="atende-bot-bench."))
        self.env.update({"CHANNELS_PREFIX": "benchbot", "WHATSAPP_GRAPH_URL": graph_url})
        os.environ.update(self.env)

    def up(self) -> None:
        celery = [PY, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"]
        self.start("gunicorn", PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application")
        self.start("webhooks", "nice", "-n", "10", *celery, "-Q", "webhooks,dispatch", "--hostname", "webhooks@%h")
        self.start("worker", *celery, "-Q", "sending,media,celery", "--hostname", "worker@%h")
        self.start("bots", *celery, "-Q", "bots", "--hostname", "bots@%h", "--concurrency", str(self.args.bot_workers))
        self.start("listener", "nice", "-n", "10", PY, "manage.py", "listen_webhooks")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.args.http_port}/health/", timeout=2)
                break
            except Exception:
                time.sleep(0.5)
        time.sleep(4)


def configure_bot(provider_url: str) -> None:
    from bots.models import BotConfig
    from conversations.services import ensure_default_inbox

    inbox = ensure_default_inbox()
    BotConfig.objects.update_or_create(
        inbox=inbox,
        defaults={
            "base_url": provider_url,
            "model": "bench-model",
            "api_key": "sk-bench",
            "burst_seconds": 0.0,
            "max_turns": 100,
            "csat": False,
            "business_name": "Bench",
        },
    )


def signed_bodies(tag: str, start: int, count: int) -> list[tuple[str, bytes]]:
    from bench import payloads

    env = os.environ
    rows = []
    for n in range(count):
        index = start + n
        body = payloads.body_for(
            tag=tag,
            index=index,
            phone_number_id=env["WHATSAPP_PHONE_NUMBER_ID"],
            display_number=env["WHATSAPP_DISPLAY_NUMBER"],
            waba_id=env["WHATSAPP_WABA_ID"],
        )
        data = json.loads(body)
        value = data["entry"][0]["changes"][0]["value"]
        customer = str(FIRST_CUSTOMER + index)
        value["contacts"][0]["wa_id"] = customer
        value["contacts"][0]["profile"]["name"] = f"Cliente {index}"
        value["messages"][0]["from"] = customer
        value["messages"][0]["text"]["body"] = "Qual o horário de funcionamento de vocês?"
        raw = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()
        rows.append((payloads.sign(raw, env["WHATSAPP_APP_SECRET"]), raw))
    return rows


def ms(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, -(-len(ordered) * p // 100)) - 1] * 1000, 1)


def stages(first: int, count: int) -> dict[int, tuple[float | None, float | None]]:
    """Customer index -> (inbound message stored, bot turn recorded) as wall-clock times."""
    from bots.models import BotRun
    from conversations.models import Message

    wanted = [str(FIRST_CUSTOMER + i) for i in range(first, first + count)]
    stored = dict(
        Message.objects.filter(direction="in", conversation__customer__wa_id__in=wanted).values_list(
            "conversation__customer__wa_id", "created"
        )
    )
    turns: dict[str, float] = {}
    for wa_id, created in BotRun.objects.filter(conversation__customer__wa_id__in=wanted).values_list(
        "conversation__customer__wa_id", "created"
    ):
        turns.setdefault(wa_id, created.timestamp())
    return {
        int(wa_id) - FIRST_CUSTOMER: (stored[wa_id].timestamp() if wa_id in stored else None, turns.get(wa_id))
        for wa_id in wanted
    }


def phase(args: argparse.Namespace, sink: GraphSink, name: str, first: int, rate: float, count: int) -> dict:
    from bench import loadgen

    url = f"http://127.0.0.1:{args.http_port}/webhooks/whatsapp/"
    rows = signed_bodies(name, first, count)
    outcome = loadgen.run(url, rows, rate, count / rate, 10.0)
    # Request i was due at start + i / rate (wall clock: the database's timestamps too).
    start_wall = outcome["start_wall"]
    deadline = time.monotonic() + args.drain
    accepted = set(outcome["accepted_indexes"])
    while time.monotonic() < deadline:
        got = sink.replies()
        if all(str(FIRST_CUSTOMER + first + i) in got for i in accepted):
            break
        time.sleep(0.2)
    got = sink.replies()
    seen = stages(first, count)
    total, to_stored, to_turn, to_sink, arrivals = [], [], [], [], []
    for i in sorted(accepted):
        due = start_wall + i / rate
        arrived = got.get(str(FIRST_CUSTOMER + first + i))
        if arrived is None:
            continue
        arrivals.append(arrived)
        total.append(arrived - due)
        stored, turn = seen.get(first + i, (None, None))
        if stored is not None:
            to_stored.append(stored - due)
            if turn is not None:
                to_turn.append(turn - stored)
                to_sink.append(arrived - turn)
    span = (max(arrivals) - min(arrivals)) if len(arrivals) > 1 else 0.0
    return {
        "phase": name,
        "rate": rate,
        "sent": count,
        "accepted": len(accepted),
        "replied": len(total),
        "p50_ms": ms(total, 50),
        "p95_ms": ms(total, 95),
        "p99_ms": ms(total, 99),
        "max_ms": ms(total, 100),
        "stored_p50_ms": ms(to_stored, 50),
        "turn_p50_ms": ms(to_turn, 50),
        "send_p50_ms": ms(to_sink, 50),
        "replies_per_s": round((len(arrivals) - 1) / span, 1) if span else None,
    }


def provider_round_trip(url: str, samples: int = 20) -> float:
    """Median time of a chat completion from this process (an upper bound of the stand-in's own time)."""
    body = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "oi"}]}).encode()
    times = []
    for _ in range(samples):
        request = urllib.request.Request(
            url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def report(rows: list[dict], provider_ms: float | None, sink_ms: float | None, args: argparse.Namespace) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        MARK_START,
        "## Bot replies (bench/bot_reply.py, issue 8)",
        "",
        f"Run {when} on this machine ({os.cpu_count()} cores), production setup: gunicorn, the niced webhook "
        f"worker and listener, the sending worker, the bots worker with {args.bot_workers} processes; an instant "
        "OpenAI-compatible provider and an instant Graph API sink in the bench process. One message per new "
        "customer (the bot's first turn in a fresh conversation), open loop. Latency: webhook request due → "
        "the reply's arrival at the Graph sink; split at the stored inbound message, the recorded bot turn "
        "(reply stored) and the sink.",
        "",
        "| phase | offered (msg/s) | replies / accepted | p50 ms | p95 ms | p99 ms | max ms "
        "| webhook → stored p50 | stored → turn done p50 | turn → reply at Meta p50 | replies/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['phase']} | {row['rate']:g} | {row['replied']} / {row['accepted']} | {row['p50_ms']} "
            f"| {row['p95_ms']} | {row['p99_ms']} | {row['max_ms']} | {row['stored_p50_ms']} "
            f"| {row['turn_p50_ms']} | {row['send_p50_ms']} | {row['replies_per_s'] or '–'} |"
        )
    steady = [row["p50_ms"] for row in rows if row["phase"].startswith("rate") and row["p50_ms"] is not None]
    verdict = "met" if steady and max(steady) <= 50 else "MISSED"
    lines += [
        "",
        f"The stand-ins' own time per request, median: provider {provider_ms} ms, Graph sink {sink_ms} ms: "
        "the latencies above are our own overhead.",
        "",
        f"Target p50 <= 50 ms of our own overhead at the steady rates: **{verdict}** "
        f"(worst steady p50 {max(steady) if steady else '–'} ms). The burst row gives the replies per second "
        f"the {args.bot_workers} bot worker processes sustain (with the webhook, sending and listener processes "
        "sharing the machine).",
        "",
        "Run it with `.venv/bin/python -m bench.bot_reply` (PostgreSQL and Redis on localhost; `--help`).",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def write_doc(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=[5, 10, 20])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--burst-rate", type=float, default=200.0)
    parser.add_argument("--bot-workers", type=int, default=2)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for late replies")
    parser.add_argument("--http-port", type=int, default=8120)
    parser.add_argument("--db", default="atende_bench_bot")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    # A TERM (timeout, kill) still stops the servers: the finally below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sys.path.insert(0, str(ROOT))
    from tests.fake_openai import FakeOpenAI

    provider = FakeOpenAI().start()
    sink = GraphSink()
    stack = Stack(args, sink.url)
    try:
        print("== fresh database and Redis", flush=True)
        stack.fresh()
        import django

        django.setup()
        configure_bot(provider.url)
        print("== servers", flush=True)
        stack.up()
        rows = []
        print("== warm-up", flush=True)
        phase(args, sink, "warmup", 0, 5, 20)
        first = 100
        for rate in args.rates:
            count = int(rate * args.duration)
            row = phase(args, sink, f"rate{rate:g}", first, rate, count)
            print(json.dumps(row), flush=True)
            rows.append(row)
            first += count
        row = phase(args, sink, "burst", first, args.burst_rate, args.burst)
        print(json.dumps(row), flush=True)
        rows.append(row)
        provider_ms = provider_round_trip(provider.url)
        sink_ms = round(statistics.median(sink.handling) * 1000, 2) if sink.handling else None
        section = report(rows, provider_ms, sink_ms, args)
        print(section)
        if not args.no_doc:
            write_doc(Path(args.doc), section)
            print(f"written to {args.doc}")
    finally:
        stack.down()
        provider.stop()


if __name__ == "__main__":
    main()
