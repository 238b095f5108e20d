"""Run the load phases against a server that bench/run.sh started, and verify the database.

Fixed offered rates go through bench.loadgen (open loop, latency from the due time);
saturation goes through wrk (closed loop, as many requests as the server will take).
Every webhook phase has its own message-id tag, so the rows it stored can be counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from bench import cpu, loadgen, payloads


def classifier(gunicorn_pid: int, celery_pid: int) -> Callable[[int, int, str], str | None]:
    def classify(pid: int, ppid: int, cmd: str) -> str | None:
        if gunicorn_pid in (pid, ppid):
            return "gunicorn"
        if celery_pid and celery_pid in (pid, ppid):
            return "celery"
        if cmd.startswith("postgres:"):
            # Our database's backends plus the shared writer processes (WAL, checkpoints).
            is_backend = "(" in cmd or "[local]" in cmd
            return "postgres" if (not is_backend or "atende_bench" in cmd) else None
        if cmd.startswith("/usr/bin/redis-server") or cmd.startswith("redis-server"):
            return "redis"
        return None

    return classify


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = args.base.rstrip("/")
        self.work: Path = args.workdir
        self.classify = classifier(args.gunicorn_pid, args.celery_pid)
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.phases: list[dict] = []

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
        """Events stored but not yet processed: pending or queued in the database, whatever
        the broker holds (the dispatcher moves them from one to the other)."""
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM conversations_webhookevent WHERE state IN ('pending', 'queued')"
            ).fetchone()
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
            if phase["kind"] == "fixed":
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
    parser.add_argument("--gunicorn-pid", type=int, required=True, help="master; its workers are counted")
    parser.add_argument("--celery-pid", type=int, default=0, help="worker main process, 0 when off")
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
    bench.fixed("warmup", 100, 3, record=False)
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
    args.out.write_text(
        json.dumps({"label": args.label, "title": args.title, "phases": bench.phases, "verification": verification})
    )


if __name__ == "__main__":
    main()
