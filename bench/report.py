"""Print the results of a bench run and append them, as one table per run, to docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import subprocess
from datetime import UTC, datetime
from pathlib import Path

MARKER = "<!-- bench/run.sh appends one section per run below this line -->"
P99_TARGET_MS = 25.0
RATIO_TARGET = 0.5


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    pg = subprocess.run(
        ["psql", os.environ.get("DATABASE_URL", ""), "-Atc", "show server_version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": pg or "?",
        "commit": commit + (" (with uncommitted changes)" if dirty.stdout.strip() else ""),
    }


def server() -> str:
    conf = runpy.run_path("config/gunicorn.conf.py")
    threads = f" x {conf['threads']} threads" if conf["threads"] > 1 else ""
    return (
        f"gunicorn {conf['worker_class']}, {conf['workers']} workers{threads}, "
        f"keepalive {conf['keepalive']} s, access log {'on' if conf['accesslog'] else 'off'}"
    )


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def contended(phase: dict) -> str:
    other = max(phase["cpu"].get("other", 0.0), phase.get("other_cpu_before", 0.0))
    return f"**{other:.0f}%**" if other > 10 else f"{other:.0f}%"


def table(run: dict) -> list[str]:
    lines = [
        "| Phase | Offered | Accepted msg/s | p50 ms | p95 ms | p99 ms | max ms | non-200 / errors "
        "| CPU % gunicorn / postgres / celery / loadgen / other | Celery backlog after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in run["phases"]:
        if not p.get("record", True):
            continue
        c = p["cpu"]
        cpu = " / ".join(fmt(c.get(k, 0.0), 0) for k in ("gunicorn", "postgres", "celery", "loadgen"))
        cpu += f" / {contended(p)}"
        if p["kind"] == "fixed":
            name = f"webhook @ {p['offered_rate']:g}/s"
            offered = f"{p['offered_rate']:g}/s open loop"
            bad = p["completed"] - p["accepted"] + sum(p["errors"].values())
            p95 = fmt(p["p95_ms"])
        else:
            name = ("webhook saturation" if p["tag"] else "empty view saturation") + f" #{p.get('round', 1)}"
            offered = f"closed loop, {p['connections']} conns"
            bad = p["non_200"] + sum(p["errors"].values())
            p95 = "–"
        lines.append(
            f"| {name} | {offered} | {fmt(p['accepted_per_s'])} | {fmt(p['p50_ms'])} | {p95} | "
            f"{fmt(p['p99_ms'])} | {fmt(p['max_ms'])} | {bad} | {cpu} | {p['celery_backlog_after']:,} |"
        )
    return lines


def verdict(run: dict) -> tuple[list[str], dict]:
    phases = {p["phase"]: p for p in run["phases"]}
    r300 = phases.get("r300")
    out: dict = {}
    lines = []
    if r300:
        out["p99_300"] = r300["p99_ms"]
        ok = r300["p99_ms"] is not None and r300["p99_ms"] <= P99_TARGET_MS and r300["accepted"] == r300["sent"]
        out["p99_ok"] = ok
        lines.append(
            f"- p99 ack at 300 msg/s: **{fmt(r300['p99_ms'])} ms** (target <= {P99_TARGET_MS:g} ms): "
            f"{'met' if ok else 'MISSED'}"
        )
    pairs = []
    for round_ in sorted({p.get("round", 1) for p in run["phases"] if p["kind"] == "saturation"}):
        sat, empty = phases.get(f"sat-webhook-{round_}"), phases.get(f"sat-empty-{round_}")
        if sat and empty and empty["accepted_per_s"]:
            pairs.append((sat["accepted_per_s"] / empty["accepted_per_s"], sat, empty))
    if pairs:
        ranked = sorted(pairs, key=lambda pair: pair[0])
        ratio, sat, empty = ranked[(len(ranked) - 1) // 2]  # the median (the lower one of an even count)
        out["ratio"] = ratio
        out["ratio_ok"] = ratio >= RATIO_TARGET
        each = ", ".join(f"{r:.0%}" for r, _s, _e in pairs)
        lines.append(
            f"- webhook saturation, median of {len(pairs)} back-to-back pairs: {fmt(sat['accepted_per_s'])} msg/s"
            f" = **{ratio:.0%}** of the empty view's {fmt(empty['accepted_per_s'])} req/s"
            f" (target >= {RATIO_TARGET:.0%}): {'met' if ratio >= RATIO_TARGET else 'MISSED'}; each pair: {each}"
        )
    v = run["verification"]
    parts = []
    for check in v["phases"]:
        text = f"{check['phase']} {check['rows']:,} rows / {check['accepted']:,} acked"
        if "in_flight_at_stop" in check and check["rows"] != check["accepted"]:
            text += f" (+{check['rows'] - check['accepted']} cut off in flight when wrk stopped)"
        if check.get("stored_not_acked"):
            text += f" (+{check['stored_not_acked']} stored after the generator gave up on them)"
        if check.get("missing"):
            text += f" (**{check['missing']} acknowledged but not stored**)"
        parts.append(text)
    lines.append(
        f"- stored == acknowledged: **{'yes' if v['ok'] else 'NO'}** "
        f"({'; '.join(parts)}; rows with a bad signature: {v['invalid_signature_rows']})"
    )
    return lines, out


def section(runs: list[dict], info: dict[str, str], server_line: str) -> str:
    lines = [
        f"### Run {info['date']}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, PostgreSQL {info['postgres']}, commit {info['commit']}.",
        f"Server: {server_line}; PostgreSQL synchronous_commit on; Redis broker.",
        "",
    ]
    for run in runs:
        lines += [f"#### {run['title']}", "", *table(run), ""]
        lines += verdict(run)[0] + [""]
    lines.append(
        '"other" is CPU used by processes outside the bench (the machine is shared); '
        "**bold** means more than 10% of the machine was busy with something else, so that row understates us."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    runs = [json.loads(path.read_text()) for path in args.results]
    text = section(runs, machine(), server())
    print(text)
    doc = args.doc.read_text() if args.doc.exists() else f"# Benchmarks\n\n{MARKER}\n"
    if MARKER not in doc:
        doc += f"\n{MARKER}\n"
    head, _, tail = doc.partition(MARKER)
    older = tail.strip("\n")
    # Newest run first, right under the marker; older runs stay below as history.
    args.doc.write_text(f"{head}{MARKER}\n\n{text}" + (f"\n{older}\n" if older else ""))
    print(f"written to {args.doc}")


if __name__ == "__main__":
    main()
