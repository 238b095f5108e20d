"""CPU accounting from /proc, so a run can say who used the two cores during each phase.

The machine may be shared; a phase during which other processes took a real share of the
CPU is marked as contended in the report instead of being passed off as a clean figure.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _total_busy() -> tuple[float, float]:
    """(busy seconds, all seconds) summed over every CPU since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / TICKS, total / TICKS


def _proc(pid: int) -> tuple[int, int, float]:
    """(parent pid, process group, CPU seconds used so far) of a process; zeros once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0, 0, 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


@dataclass
class Snapshot:
    busy: float
    total: float
    procs: dict[int, tuple[str, float]]  # pid -> (group, CPU seconds)


Classifier = Callable[[int, int, int, str], "str | None"]


def snapshot(classify: Classifier, children: str = "loadgen") -> Snapshot:
    """Busy CPU of the machine, and per process of a group (``classify`` maps pid, parent pid,
    process group and command line to a group). Children this process waited for (wrk) count
    as ``children``."""
    busy, total = _total_busy()
    procs: dict[int, tuple[str, float]] = {}
    for pid in _pids():
        ppid, pgrp, seconds = _proc(pid)
        group = classify(pid, ppid, pgrp, _cmdline(pid))
        if group is not None:
            procs[pid] = (group, seconds)
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs[-1] = (children, own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime)
    return Snapshot(busy, total, procs)


def usage(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Percent of the whole machine (100 = every core busy) per group, plus 'other'."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return {}
    shares: dict[str, float] = {}
    # Per process, so a worker gunicorn recycled mid-phase counts from its start; the CPU an
    # exited process used during the phase is lost to us and lands in "other".
    for pid, (group, seconds) in after.procs.items():
        start = before.procs.get(pid, (group, 0.0))[1]
        shares[group] = shares.get(group, 0.0) + max(0.0, seconds - start) / elapsed * 100
    busy = (after.busy - before.busy) / elapsed * 100
    shares["other"] = max(0.0, busy - sum(shares.values()))
    shares["busy"] = busy
    return {k: round(v, 1) for k, v in shares.items()}


def seconds(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds used per group between two snapshots (for costs per message)."""
    used: dict[str, float] = {}
    for pid, (group, spent) in after.procs.items():
        start = before.procs.get(pid, (group, 0.0))[1]
        used[group] = used.get(group, 0.0) + max(0.0, spent - start)
    used["busy"] = after.busy - before.busy
    return used
