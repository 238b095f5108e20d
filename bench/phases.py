"""Run the load phases against a server that bench/run.sh started, and verify the database.

Fixed offered rates go through bench.loadgen (open loop, latency from the due time);
saturation goes through wrk (closed loop, as many requests as the server will take).
Every webhook phase has its own message-id tag, so the rows it stored can be counted.

End-to-end phases (``flow``) also run bench.subscriber, a channel-layer subscriber of the
bench inbox, and time each acknowledged message from its request's due time to the arrival
of its ``message.created`` event; the sustained steps add the backlog, sampled every second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from bench import cpu, loadgen, payloads, querycount, subscriber


def classifier(groups: dict[int, str], extra: dict[int, str]) -> cpu.Classifier:
    """``groups``: process group id -> name (each server runs in its own group, started with
    setsid, so a Celery pool child or a gunicorn worker counts with its master); ``extra``:
    single processes of the bench itself (the subscriber)."""

    def classify(pid: int, ppid: int, pgrp: int, cmd: str) -> str | None:
        if pgrp in groups:
            return groups[pgrp]
        if pid in extra:
            return extra[pid]
        if cmd.startswith("postgres:"):
            # Our database's backends plus the shared writer processes (WAL, checkpoints).
            is_backend = "(" in cmd or "[local]" in cmd
            # (" atende_bench ": not bench/console_ws.py's atende_bench_ws.)
            return "postgres" if (not is_backend or " atende_bench " in cmd) else None
        if cmd.startswith("/usr/bin/redis-server") or cmd.startswith("redis-server"):
            return "redis"
        return None

    return classify


def nearest_rank(sorted_values: list[float], total: int, p: float) -> float | None:
    """Like loadgen.percentile over ``total`` values, of which those beyond ``sorted_values``
    never arrived (count as longer than any): None when the rank falls among them."""
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    return round(sorted_values[rank - 1] * 1000, 1) if rank <= len(sorted_values) else None


def slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope (events per second) of (time, backlog) samples."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_b = sum(b for _, b in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (b - mean_b) for t, b in samples) / var if var else 0.0


class BacklogSampler(threading.Thread):
    """Reads the backlog once a second while a phase runs (its own connection; one indexed
    count per second)."""

    def __init__(self, every: float = 1.0) -> None:
        super().__init__(name="backlog-sampler", daemon=True)
        self.every = every
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, pending, failed)
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while True:
                pending, failed = backlog_counts(conn)
                self.samples.append((time.monotonic(), pending, failed))
                if self.stopping.wait(self.every):
                    return

    def stop(self) -> list[tuple[float, int, int]]:
        self.stopping.set()
        self.join()
        return self.samples


def backlog_counts(conn: psycopg.Connection) -> tuple[int, int]:
    """(pending, failed) webhook events: the database row is the queue."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed')"
        " FROM conversations_webhookevent WHERE state IN ('pending', 'failed') AND signature_valid"
    ).fetchone()
    return int(row[0]), int(row[1])


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = args.base.rstrip("/")
        self.work: Path = args.workdir
        self.extra: dict[int, str] = {}
        self.classify = classifier(dict(args.group), self.extra)
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.phases: list[dict] = []
        self.sub: subprocess.Popen[str] | None = None
        self.sub_file = self.work / f"events-{args.label}.txt"
        self.sub_offset = 0

    def bodies(self, tag: str, count: int) -> Path:
        path = self.work / f"bodies-{tag}.txt"
        payloads.write(
            path,
            tag=tag,
            count=count,
            secret=self.args.secret,
            phone_number_id=self.args.phone_number_id,
            display=self.args.display_number,
            waba=self.args.waba_id,
        )
        return path

    def backlog(self) -> int:
        """Events stored but not yet processed (pending in the database: the row is the queue)."""
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            return backlog_counts(conn)[0]

    def drain(self, limit: float) -> tuple[float, int]:
        """Wait up to ``limit`` seconds for the backlog to empty: (seconds waited, backlog left)."""
        started = time.monotonic()
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while True:
                pending = backlog_counts(conn)[0]
                if pending == 0 or time.monotonic() - started >= limit:
                    return round(time.monotonic() - started, 1), pending
                time.sleep(0.5)

    def start_subscriber(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            row = conn.execute(
                "SELECT id FROM conversations_inbox WHERE phone_number_id = %s", [self.args.phone_number_id]
            ).fetchone()
        self.sub_file.touch()
        # The product's own settings (CHANNEL_LAYERS from REDIS_URL): what a console would use.
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
        command = [sys.executable, "-m", "bench.subscriber", "--inbox-id", str(row[0]), "--out", str(self.sub_file)]
        self.sub = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        line = self.sub.stdout.readline() if self.sub.stdout else ""
        if "ready" not in line:
            raise SystemExit(f"subscriber did not start: {line!r}")
        self.extra[self.sub.pid] = "subscriber"

    def stop_subscriber(self) -> None:
        if self.sub is not None:
            self.sub.terminate()
            self.sub.wait(10)
            self.sub = None

    def messages_of(self, tag: str) -> dict[int, int]:
        """message id -> request index, for the messages a phase's bodies created."""
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            rows = conn.execute(
                "SELECT id, wamid FROM conversations_message WHERE wamid LIKE %s", [f"wamid.BENCH-{tag}-%"]
            ).fetchall()
        return {message_id: int(wamid.rsplit("-", 1)[1]) for message_id, wamid in rows}

    def events_of(self, tag: str, since_wall: float) -> dict[int, tuple[float, float | None]]:
        """request index -> (received, processed) wall-clock times of the phase's stored events."""
        marker = f"wamid.BENCH-{tag}-"
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            rows = conn.execute(
                "SELECT substring(convert_from(body, 'UTF8') from 'wamid\\.BENCH-[A-Za-z0-9_.-]+'),"
                " extract(epoch FROM received)::float8, extract(epoch FROM processed)::float8"
                " FROM conversations_webhookevent WHERE received >= to_timestamp(%s)",
                [since_wall - 5],
            ).fetchall()
        return {
            int(wamid.rsplit("-", 1)[1]): (received, processed)
            for wamid, received, processed in rows
            if wamid and wamid.startswith(marker)
        }

    def processed_between(self, start_wall: float, end_wall: float) -> int:
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            row = conn.execute(
                "SELECT count(*) FROM conversations_webhookevent"
                " WHERE processed >= to_timestamp(%s) AND processed < to_timestamp(%s)",
                [start_wall, end_wall],
            ).fetchone()
        return int(row[0])

    def commits(self) -> int:
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        return int(row[0])

    def wait_quiet(self) -> float:
        """Wait (up to --quiet-wait seconds) for other processes to leave the CPUs alone.
        Returns the share of the machine they were still using when we stopped waiting."""
        deadline = time.monotonic() + self.args.quiet_wait
        while True:
            before = cpu.snapshot(self.classify)
            time.sleep(1.0)
            other = cpu.usage(before, cpu.snapshot(self.classify)).get("other", 0.0)
            if other <= self.args.quiet_threshold or time.monotonic() >= deadline:
                return other

    def settle(self) -> None:
        """After an overload, wait until the server has worked off the queued connections."""
        deadline = time.monotonic() + 60
        fast = 0
        while fast < 3 and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                urllib.request.urlopen(f"{self.base}/bench/empty/", timeout=30).read()
            except OSError:
                fast = 0
                continue
            fast = fast + 1 if time.monotonic() - started < 0.05 else 0
            time.sleep(0.2)

    def measured(self, phase: dict, run: Callable[[], dict]) -> dict:
        self.settle()
        phase["other_cpu_before"] = self.wait_quiet()
        before = cpu.snapshot(self.classify)
        result = run()
        after = cpu.snapshot(self.classify)
        result.update(phase)
        result["cpu"] = cpu.usage(before, after)
        result["celery_backlog_after"] = self.backlog()
        self.phases.append(result)
        shown = {k: v for k, v in result.items() if k not in ("accepted_indexes", "cpu")}
        print(json.dumps(shown), flush=True)
        print(f"    cpu % of machine: {result['cpu']}", flush=True)
        return result

    def fixed(self, name: str, rate: float, duration: float, *, record: bool = True) -> None:
        tag = f"{self.args.label}-{name}"
        path = self.bodies(tag, int(rate * duration))
        rows = payloads.read(path)
        url = f"{self.base}/webhooks/whatsapp/"
        phase = {"phase": name, "kind": "fixed", "tag": tag, "record": record}
        self.measured(phase, lambda: loadgen.run(url, rows, rate, duration, timeout=10.0))
        time.sleep(self.args.pause)

    def flow(self, name: str, rate: float, duration: float, *, kind: str, tail: float) -> dict:
        """One open-loop phase followed end to end: acknowledgement, processing (the database's
        ``processed``), publication (the subscriber's arrival of ``message.created``).

        ``tail``: how long to keep waiting after the last request for the stragglers' events
        (a message whose event has not arrived by then counts as longer than any other)."""
        tag = f"{self.args.label}-{name}"
        drained_s, left = self.drain(self.args.drain_limit)
        rows = payloads.read(self.bodies(tag, int(rate * duration)))
        url = f"{self.base}/webhooks/whatsapp/"
        phase = {
            "phase": name,
            "kind": kind,
            "tag": tag,
            "record": True,
            "drained_before_s": drained_s,
            "backlog_before": left,
        }
        self.settle()
        phase["other_cpu_before"] = self.wait_quiet()
        sampler = BacklogSampler()
        sampler.start()
        queries_before, commits_before = querycount.read(self.redis), self.commits()
        before = cpu.snapshot(self.classify)
        result = loadgen.run(url, rows, rate, duration, timeout=10.0)
        after = cpu.snapshot(self.classify)
        queries_after, commits_after = querycount.read(self.redis), self.commits()
        samples = sampler.stop()
        result.update(phase)
        result["cpu"] = cpu.usage(before, after)
        cpu_s = cpu.seconds(before, after)
        start_mono, start_wall = result["start_monotonic"], result["start_wall"]
        window = (after.total - before.total) / (os.cpu_count() or 1)  # the seconds the CPU figures cover
        end_wall = start_wall + duration

        # Wait for the events of the acknowledged messages (bounded), then match them.
        accepted = set(result["accepted_indexes"])
        deadline = time.monotonic() + tail
        arrivals: dict[int, float] = {}
        arrivals_wall: dict[int, float] = {}
        index_of: dict[int, int] = {}
        while True:
            events, self.sub_offset = subscriber.read(self.sub_file, self.sub_offset)
            pending = [e for e in events if e[2] not in index_of]
            if pending:
                index_of.update(self.messages_of(tag))
            for mono, wall, message_id in events:
                index = index_of.get(message_id)
                if index is not None and index not in arrivals:
                    arrivals[index] = mono
                    arrivals_wall[index] = wall
            if accepted <= arrivals.keys() or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        stored = self.events_of(tag, start_wall)
        due = {i: start_mono + i / rate for i in accepted}
        e2e = sorted(arrivals[i] - due[i] for i in accepted if i in arrivals)
        to_processed = sorted(
            stored[i][1] - (start_wall + i / rate) for i in accepted if i in stored and stored[i][1] is not None
        )
        # From the worker's stamp (taken before its batch commits) to the subscriber: the
        # rest of the batch, the commit and the channel layer.
        publish_lag = sorted(
            arrivals_wall[i] - stored[i][1] for i in arrivals_wall if i in stored and stored[i][1] is not None
        )
        in_window = [i for i in arrivals if start_mono <= arrivals[i] < start_mono + duration]
        processed = self.processed_between(start_wall, end_wall)
        result.update(
            {
                "e2e_p50_ms": nearest_rank(e2e, len(accepted), 50),
                "e2e_p95_ms": nearest_rank(e2e, len(accepted), 95),
                "e2e_p99_ms": nearest_rank(e2e, len(accepted), 99),
                "e2e_max_ms": nearest_rank(e2e, len(accepted), 100),
                "published": len(e2e),
                "not_published": len(accepted) - len(e2e),
                "tail_s": tail,
                "processed_p50_ms": nearest_rank(to_processed, len(accepted), 50),
                "processed_p99_ms": nearest_rank(to_processed, len(accepted), 99),
                "publish_lag_p50_ms": nearest_rank(publish_lag, len(publish_lag), 50),
                "publish_lag_p99_ms": nearest_rank(publish_lag, len(publish_lag), 99),
                "processed_in_window": processed,
                "processed_per_s": round(processed / duration, 1),
                "published_per_s": round(len(in_window) / duration, 1),
                "window_s": round(window, 1),
                "backlog": [(round(t - start_mono, 1), p, f) for t, p, f in samples],
                "queries": {k: queries_after.get(k, 0) - queries_before.get(k, 0) for k in queries_after},
                "commits": commits_after - commits_before,
                "cpu_seconds": {k: round(v, 2) for k, v in cpu_s.items()},
                "backlog_after": samples[-1][1] if samples else None,
                "celery_backlog_after": samples[-1][1] if samples else 0,
            }
        )
        self.judge(result)
        self.phases.append(result)
        shown = {
            k: v
            for k, v in result.items()
            if k not in ("accepted_indexes", "cpu", "backlog", "cpu_seconds", "start_monotonic", "start_wall")
        }
        print(json.dumps(shown), flush=True)
        print(f"    cpu % of machine: {result['cpu']}", flush=True)
        print(f"    backlog (s, pending, failed): {result['backlog'][:: max(1, len(samples) // 12)]}", flush=True)
        return result

    def judge(self, result: dict) -> None:
        """Sustained = acknowledged, processed and published with the backlog not growing.

        Over the step's samples (one a second, from the first request to the last answer):
        every request answered 200; the least-squares slope of the pending backlog at most 1%
        of the offered rate per second; the backlog over the last 5 samples at most one
        second of traffic on average; and message.created events received during the step
        at least 97% of the offered rate (what a lag of under two seconds allows)."""
        rate = result["offered_rate"]
        points = [(t, p) for t, p, _f in result["backlog"]]
        last = [p for _t, p in points[-5:]]
        result["backlog_slope_per_s"] = round(slope(points), 2)
        result["backlog_end_mean"] = round(sum(last) / len(last), 1) if last else None
        checks = {
            "acknowledged": result["accepted"] == result["sent"],
            "backlog_flat": result["backlog_slope_per_s"] <= 0.01 * rate,
            "backlog_small": result["backlog_end_mean"] is not None and result["backlog_end_mean"] <= rate,
            "published": result["published_per_s"] >= 0.97 * rate,
        }
        result["checks"] = checks
        result["sustained"] = all(checks.values())

    def saturate(self, name: str, path: str, duration: float, connections: int, webhook: bool) -> None:
        tag = f"{self.args.label}-{name}"
        bodies = self.bodies(tag, int(self.args.max_rate * duration))
        command = [
            shutil.which("wrk") or "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "10s",
            "-s",
            str(Path(__file__).with_name("wrk_webhook.lua")),
            f"{self.base}{path}",
            "--",
            str(bodies),
            "1",
        ]
        phase = {
            "phase": name,
            "round": int(name.rsplit("-", 1)[1]),
            "kind": "saturation",
            "tag": tag if webhook else None,
            "record": True,
            "connections": connections,
        }

        def run() -> dict:
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            match = re.search(r"^WRK_JSON (.*)$", out, re.MULTILINE)
            if match is None:
                raise SystemExit(f"wrk printed no summary:\n{out}")
            raw = json.loads(match.group(1))
            seconds = raw["duration_us"] / 1e6
            return {
                "accepted": raw["ok"],
                "accepted_per_s": round(raw["ok"] / seconds, 1),
                "completed": raw["requests"],
                "sent": raw["sent"],
                "in_flight_at_stop": raw["sent"] - raw["ok"] - raw["other"],
                "non_200": raw["other"],
                "errors": {k: raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts") if raw[k]},
                "exhausted_bodies": bool(raw["exhausted"]),
                "duration_s": round(seconds, 2),
                "p50_ms": round(raw["p50_us"] / 1000, 2),
                "p99_ms": round(raw["p99_us"] / 1000, 2),
                "max_ms": round(raw["max_us"] / 1000, 2),
            }

        self.measured(phase, run)
        time.sleep(self.args.pause)

    def verify(self) -> dict:
        """Every 200 must have its row: compare stored message ids with acknowledged ones."""
        stored: dict[str, set[str]] = {}
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            rows = conn.execute(
                "SELECT substring(convert_from(body, 'UTF8') from 'wamid\\.BENCH-[A-Za-z0-9_.-]+'), signature_valid"
                " FROM conversations_webhookevent"
            ).fetchall()
            total_rows = len(rows)
        invalid = sum(1 for _wamid, valid in rows if not valid)
        for wamid, _valid in rows:
            if wamid:
                tag, _, _index = wamid.removeprefix("wamid.BENCH-").rpartition("-")
                stored.setdefault(tag, set()).add(wamid)
        checks = []
        for phase in self.phases:
            tag = phase.get("tag")
            if not tag:
                continue
            ids = stored.get(tag, set())
            check = {"phase": phase["phase"], "accepted": phase["accepted"], "rows": len(ids)}
            if "accepted_indexes" in phase:
                acked = {f"wamid.BENCH-{tag}-{i:08d}" for i in phase["accepted_indexes"]}
                check["missing"] = len(acked - ids)
                check["stored_not_acked"] = len(ids - acked)
                # A request the generator gave up on (timeout, reset) may still have been
                # stored: Meta would retry it and the retry dedupes. A 200 without a row never is.
                gave_up = phase["sent"] - phase["completed"]
                check["gave_up"] = gave_up
                check["ok"] = not (acked - ids) and len(ids - acked) <= gave_up
            else:
                # wrk drops the requests still in flight when its clock runs out; the server may
                # have stored those, so rows may exceed the 200s by at most that many.
                check["in_flight_at_stop"] = phase["in_flight_at_stop"]
                check["ok"] = phase["accepted"] <= len(ids) <= phase["accepted"] + phase["in_flight_at_stop"]
            checks.append(check)
        return {
            "total_rows": total_rows,
            "invalid_signature_rows": invalid,
            "phases": checks,
            "ok": all(c["ok"] for c in checks) and invalid == 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--label", required=True, help="short run label, part of every message id")
    parser.add_argument("--title", required=True, help="human description of this configuration")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--phone-number-id", required=True)
    parser.add_argument("--display-number", default="15550000000")
    parser.add_argument("--waba-id", default="100000000000000")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        type=lambda text: (int(text.split("=", 1)[1]), text.split("=", 1)[0]),
        help="NAME=PGID of a server started by run.sh (repeat): its whole process group counts as NAME",
    )
    parser.add_argument("--e2e-rates", default="", help="end-to-end latency phases, msg/s (empty: none)")
    parser.add_argument("--e2e-duration", type=float, default=30.0)
    parser.add_argument("--sustain-rates", default="", help="sustained steps, msg/s, ascending (empty: none)")
    parser.add_argument("--sustain-duration", type=float, default=60.0)
    parser.add_argument("--drain-limit", type=float, default=90.0, help="max seconds to wait for an empty backlog")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds at 100 msg/s (10 s: all 997 customers)")
    parser.add_argument("--rates", default="100,300,1000")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--sat-duration", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--sat-rounds", type=int, default=3, help="alternating empty-view/webhook saturation pairs; the median counts"
    )
    parser.add_argument("--max-rate", type=float, default=4000.0, help="bodies to prepare per saturation second")
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--quiet-wait", type=float, default=8.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--quiet-threshold", type=float, default=10.0, help="%% of the machine others may use")
    parser.add_argument("--no-empty", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    bench = Bench(args)
    bench.fixed("warmup", 100, args.warmup, record=False)
    e2e_rates = [float(r) for r in args.e2e_rates.split(",") if r]
    sustain_rates = [float(r) for r in args.sustain_rates.split(",") if r]
    if e2e_rates or sustain_rates:
        bench.start_subscriber()
        try:
            for rate in e2e_rates:
                bench.flow(f"e2e{rate:g}", rate, args.e2e_duration, kind="e2e", tail=60.0)
            for rate in sustain_rates:
                step = bench.flow(f"sustain{rate:g}", rate, args.sustain_duration, kind="sustain", tail=5.0)
                if not step["sustained"]:
                    break  # the next, higher rate would not hold either
        finally:
            bench.stop_subscriber()
        # Today's intake phases start from an empty backlog, as the flow phases did.
        bench.drain(args.drain_limit)
    for rate in [float(r) for r in args.rates.split(",") if r]:
        bench.fixed(f"r{rate:g}", rate, args.duration)
    # Saturation in alternating pairs (empty view, then webhook, back to back): on a shared VM the
    # ceiling moves by ±20% from one minute to the next, so each webhook figure is compared with
    # the empty view measured right before it, and the verdict takes the median pair.
    for round_ in range(1, max(args.sat_rounds, 1) + 1):
        duration, connections = args.sat_duration, args.connections
        if not args.no_empty:
            bench.saturate(f"sat-empty-{round_}", "/bench/empty/", duration, connections, webhook=False)
        bench.saturate(f"sat-webhook-{round_}", "/webhooks/whatsapp/", duration, connections, webhook=True)
    verification = bench.verify()
    print(f"verification: {json.dumps(verification)}", flush=True)
    for phase in bench.phases:
        phase.pop("accepted_indexes", None)
    bench.stop_subscriber()
    args.out.write_text(
        json.dumps({"label": args.label, "title": args.title, "phases": bench.phases, "verification": verification})
    )


if __name__ == "__main__":
    main()
