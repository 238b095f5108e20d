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
E2E_P99_TARGET_MS = 100.0
E2E_TARGET_RATE = 100.0
SUSTAINED_TARGET = 200.0
# CPU groups of bench/run.sh's processing processes (compose.yaml's workers, listener, beat).
PROCESSING = ("worker-webhooks", "worker", "worker-bots", "listener", "beat")


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
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
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


def cpu_cells(p: dict) -> str:
    c = p["cpu"]
    shares = [c.get("gunicorn", 0.0), c.get("postgres", 0.0), sum(c.get(k, 0.0) for k in PROCESSING)]
    shares.append(c.get("loadgen", 0.0) + c.get("subscriber", 0.0))
    return " / ".join(fmt(v, 0) for v in shares) + f" / {contended(p)}"


CPU_HEADER = "CPU % gunicorn / postgres / processing / bench tools / other"


def ms(value: float | None, tail: float | None = None) -> str:
    """A latency in ms; None means the rank fell among messages whose event never arrived."""
    if value is None:
        return f"> {tail:g} s" if tail else "–"
    return fmt(value)


def e2e_table(run: dict) -> list[str]:
    lines = [
        "| Offered | Acked | ack p50 / p99 ms | processed p50 / p99 ms | then published p50 / p99 ms "
        f"| event p50 ms | p95 ms | p99 ms | max ms | events / acked | {CPU_HEADER} | backlog before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in run["phases"]:
        if p["kind"] != "e2e":
            continue
        tail = p["tail_s"] + p["duration_s"]
        lines.append(
            f"| {p['offered_rate']:g}/s for {p['duration_s']:g} s | {p['accepted']:,} / {p['sent']:,} "
            f"| {fmt(p['p50_ms'])} / {fmt(p['p99_ms'])} "
            f"| {ms(p['processed_p50_ms'], tail)} / {ms(p['processed_p99_ms'], tail)} "
            f"| {ms(p['publish_lag_p50_ms'])} / {ms(p['publish_lag_p99_ms'])} "
            f"| {ms(p['e2e_p50_ms'], tail)} | {ms(p['e2e_p95_ms'], tail)} | **{ms(p['e2e_p99_ms'], tail)}** "
            f"| {ms(p['e2e_max_ms'], tail)} | {p['published']:,} / {p['accepted']:,} | {cpu_cells(p)} "
            f"| {p['backlog_before']:,} → {p['celery_backlog_after']:,} |"
        )
    return lines


def sustain_table(run: dict) -> list[str]:
    lines = [
        "| Offered | Acked/s | ack p99 ms | processed/s | events/s | backlog start → end (last 5 s mean), max "
        f"| slope /s | event p99 ms | {CPU_HEADER} | holds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in run["phases"]:
        if p["kind"] != "sustain":
            continue
        backlog = [b for _t, b, _f in p["backlog"]]
        failed = max((f for _t, _b, f in p["backlog"]), default=0)
        missed = [k for k, ok in p["checks"].items() if not ok]
        holds = "**yes**" if p["sustained"] else "no: " + ", ".join(missed).replace("_", " ")
        lines.append(
            f"| {p['offered_rate']:g}/s for {p['duration_s']:g} s | {fmt(p['accepted_per_s'])} | {fmt(p['p99_ms'])} "
            f"| {fmt(p['processed_per_s'])} | {fmt(p['published_per_s'])} "
            f"| {backlog[0] if backlog else 0:,} → {fmt(p['backlog_end_mean'], 0)}, {max(backlog, default=0):,}"
            + (f" ({failed} failed)" if failed else "")
            + f" | {p['backlog_slope_per_s']:+.1f} | {ms(p['e2e_p99_ms'], p['tail_s'] + p['duration_s'])} "
            f"| {cpu_cells(p)} | {holds} |"
        )
    return lines


def costs(step: dict) -> list[str]:
    """CPU and statements per processed message over one sustained step."""
    processed = step["processed_in_window"]
    if not processed:
        return []
    used = step["cpu_seconds"]
    accepted = step["accepted"] or 1
    per = {k: used.get(k, 0.0) / processed * 1000 for k in ("postgres", "redis", *PROCESSING)}
    processing = sum(per[k] for k in PROCESSING)
    queries = step["queries"]
    processing_queries = sum(n for role, n in queries.items() if role != "web")
    parts = ", ".join(f"{k} {per[k]:.2f}" for k in PROCESSING if used.get(k))
    by_role = ", ".join(f"{role} {n / processed:.2f}" for role, n in sorted(queries.items()) if role != "web" and n)
    return [
        f"- cost per processed message at {step['offered_rate']:g} msg/s ({processed:,} processed in the step): "
        f"**{processing:.1f} ms of CPU** in processing ({parts}), plus {per['postgres']:.2f} ms of PostgreSQL "
        f"and {per['redis']:.2f} ms of Redis for both sides; acknowledging cost "
        f"{used.get('gunicorn', 0.0) / accepted * 1000:.2f} ms of gunicorn CPU per request",
        f"- SQL statements per processed message (sent through Django, bench/querycount.py): "
        f"**{processing_queries / processed:.1f}** ({by_role}); "
        f"web {queries.get('web', 0) / accepted:.2f} per request besides its libpq INSERT; "
        f"PostgreSQL commits, all processes: {step['commits'] / processed:.1f} per message",
    ]


def table(run: dict) -> list[str]:
    lines = [
        "| Phase | Offered | Accepted msg/s | p50 ms | p95 ms | p99 ms | max ms | non-200 / errors "
        f"| {CPU_HEADER} | backlog after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in run["phases"]:
        if not p.get("record", True) or p["kind"] in ("e2e", "sustain"):
            continue
        cpu = cpu_cells(p)
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
    e2e = phases.get(f"e2e{E2E_TARGET_RATE:g}")
    if e2e:
        ok = e2e["e2e_p99_ms"] is not None and e2e["e2e_p99_ms"] <= E2E_P99_TARGET_MS
        out["e2e_p99_ok"] = ok
        lines.append(
            f"- webhook to live event, p99 at {E2E_TARGET_RATE:g} msg/s: "
            f"**{ms(e2e['e2e_p99_ms'], e2e['tail_s'] + e2e['duration_s'])} ms** "
            f"(target <= {E2E_P99_TARGET_MS:g} ms): {'met' if ok else 'MISSED'}"
        )
    steps = [p for p in run["phases"] if p["kind"] == "sustain"]
    if steps:
        held = [p for p in steps if p["sustained"]]
        best = max((p["offered_rate"] for p in held), default=None)
        ok = best is not None and best >= SUSTAINED_TARGET
        out["sustained"], out["sustained_ok"] = best, ok
        first_miss = next((p for p in steps if not p["sustained"]), None)
        text = f"**{best:g} msg/s**" if best is not None else f"**below {steps[0]['offered_rate']:g} msg/s**"
        if first_miss is None:
            text += " (the highest step tried)"
        else:
            text += f"; {first_miss['offered_rate']:g} msg/s did not hold"
        lines.append(
            f"- sustained end to end: {text} (target >= {SUSTAINED_TARGET:g} msg/s): {'met' if ok else 'MISSED'}"
        )
        lines += costs(max(held, key=lambda p: p["offered_rate"]) if held else steps[0])
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
        f"Python {info['python']}, PostgreSQL {info['postgres']}, commit {info['commit']}; "
        f"load average at the end {info['load']} (1 / 5 / 15 min; the machine is shared).",
        f"Server: {server_line}; PostgreSQL synchronous_commit on; Redis broker.",
        "",
    ]
    for run in runs:
        lines += [f"#### {run['title']}", ""]
        if any(p["kind"] == "e2e" for p in run["phases"]):
            lines += ["Webhook to live event (open loop; from each request's due time):", "", *e2e_table(run), ""]
        if any(p["kind"] == "sustain" for p in run["phases"]):
            lines += ["Sustained steps (stepped up until one does not hold):", "", *sustain_table(run), ""]
            lines += ["Intake (acknowledgements):", ""]
        lines += [*table(run), ""]
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
