"""Open-loop, constant-rate HTTP/1.1 load generator for pre-signed webhook bodies.

Request i is due at ``start + i / rate`` whether or not earlier requests were answered (open
loop). Its latency runs from that due time, not from when it was actually written, to the
last byte of the response: a stall on the server (or in this generator) shows up as latency
instead of silently lowering the offered rate (no coordinated omission). A slow answer never
delays the next send: every request gets its own connection unless the server kept an
earlier one alive and idle.

It is a bare epoll loop rather than asyncio because it shares two cores with the server:
asyncio streams cost ~0.8 ms of CPU per request, this costs a small fraction of that.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import resource
import select
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import payloads

READ = select.EPOLLIN | select.EPOLLRDHUP
WRITE = select.EPOLLOUT


@dataclass
class Exchange:
    index: int
    due: float
    raw: bytes
    sock: socket.socket
    reused: bool = False
    sent: int = 0
    buf: bytearray = field(default_factory=bytearray)


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    accepted: list[int] = field(default_factory=list)
    max_send_lag: float = 0.0
    connections_opened: int = 0
    max_in_flight: int = 0
    last_done: float = 0.0


def build_request(host: str, port: int, path: str, header: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: facebookexternalua\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Hub-Signature-256: {header}\r\n"
        "\r\n"
    )
    return head.encode() + body


def parse_response(buf: bytearray) -> tuple[int, bool] | None:
    """(status, keep-alive) once the whole response is in ``buf``; None while incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    keep = lines[0].startswith(b"HTTP/1.1")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    if len(buf) < end + 4 + length:
        return None
    return status, keep


class Generator:
    def __init__(self, url: str, raws: list[bytes], rate: float, timeout: float, max_in_flight: int) -> None:
        parts = urlsplit(url)
        self.addr = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.raws = raws
        self.rate = rate
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.epoll = select.epoll()
        self.active: dict[int, Exchange] = {}
        self.idle: list[socket.socket] = []
        self.waiting: deque[tuple[int, float]] = deque()
        self.results = Results()

    def _open(self, index: int, due: float) -> None:
        raw = self.raws[index]
        if self.idle:
            sock = self.idle.pop()
            ex = Exchange(index, due, raw, sock, reused=True)
            self.active[sock.fileno()] = ex
            self.epoll.modify(sock.fileno(), WRITE)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            code = sock.connect_ex(self.addr)
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                self._fail(Exchange(index, due, raw, sock), errno.errorcode.get(code, str(code)))
                return
            self.results.connections_opened += 1
            ex = Exchange(index, due, raw, sock)
            self.active[sock.fileno()] = ex
            self.epoll.register(sock.fileno(), WRITE)
        self.results.max_in_flight = max(self.results.max_in_flight, len(self.active))

    def _start(self, index: int, due: float, now: float) -> None:
        self.results.max_send_lag = max(self.results.max_send_lag, now - due)
        if len(self.active) >= self.max_in_flight:
            self.waiting.append((index, due))
        else:
            self._open(index, due)

    def _close(self, ex: Exchange) -> None:
        fd = ex.sock.fileno()
        self.active.pop(fd, None)
        self.epoll.unregister(fd)
        ex.sock.close()

    def _fail(self, ex: Exchange, reason: str) -> None:
        self.results.errors[reason] += 1

    def _finish(self, ex: Exchange, status: int, keep: bool, now: float) -> None:
        results = self.results
        results.latencies.append(now - ex.due)
        results.last_done = max(results.last_done, now)
        results.statuses[status] += 1
        if status == 200:
            results.accepted.append(ex.index)
        if keep:
            fd = ex.sock.fileno()
            del self.active[fd]
            self.epoll.modify(fd, 0)
            self.idle.append(ex.sock)
        else:
            self._close(ex)
        if self.waiting:
            self._open(*self.waiting.popleft())

    def _event(self, fd: int, events: int, now: float) -> None:
        ex = self.active.get(fd)
        if ex is None:
            return
        try:
            if events & WRITE and ex.sent < len(ex.raw):
                ex.sent += ex.sock.send(ex.raw[ex.sent :])
                if ex.sent == len(ex.raw):
                    self.epoll.modify(fd, READ)
                return
            chunk = ex.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._retry_or_fail(ex, type(exc).__name__)
            return
        if not chunk:
            self._retry_or_fail(ex, "closed before answering")
            return
        ex.buf += chunk
        parsed = parse_response(ex.buf)
        if parsed is not None:
            self._finish(ex, parsed[0], parsed[1], now)

    def _retry_or_fail(self, ex: Exchange, reason: str) -> None:
        self._close(ex)
        if ex.reused and not ex.buf:
            # A kept-alive connection the server closed while it sat idle: nothing was
            # answered on it, so the request goes out again on a fresh connection.
            self._open(ex.index, ex.due)
        else:
            self._fail(ex, reason)

    def run(self) -> float:
        count = len(self.raws)
        start = time.perf_counter() + 0.05
        index = 0
        while index < count or self.active or self.waiting:
            now = time.perf_counter()
            while index < count and start + index / self.rate <= now:
                self._start(index, start + index / self.rate, now)
                index += 1
            if index < count:
                wait = max(0.0, start + index / self.rate - time.perf_counter())
            else:
                wait = 0.05
                self._expire(now)
            for fd, events in self.epoll.poll(wait):
                self._event(fd, events, time.perf_counter())
        for sock in self.idle:
            sock.close()
        return start

    def _expire(self, now: float) -> None:
        for ex in [ex for ex in self.active.values() if now - ex.due > self.timeout]:
            self._close(ex)
            self._fail(ex, "timeout")
        while self.waiting and now - self.waiting[0][1] > self.timeout:
            self.waiting.popleft()
            self.results.errors["timeout"] += 1


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value that p% of the values do not exceed, in ms."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1] * 1000, 2)


def run(url: str, rows: list[tuple[str, bytes]], rate: float, duration: float, timeout: float) -> dict:
    count = int(rate * duration)
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} bodies for {count} requests")
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    raws = [build_request(host, port, path, header, body) for header, body in rows[:count]]
    generator = Generator(url, raws, rate, timeout, max_in_flight=4000)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = generator.run()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    results = generator.results
    span = max(results.last_done, start + count / rate) - start
    # Request i was due at start + i / rate; the same instant on CLOCK_MONOTONIC (which
    # perf_counter reads on Linux: the subscriber's clock) and on the wall clock (the
    # database's timestamps).
    now_perf, now_mono, now_wall = time.perf_counter(), time.monotonic(), time.time()
    latencies = sorted(results.latencies)
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "sent": count,
        "completed": len(latencies),
        "accepted": len(results.accepted),
        "accepted_per_s": round(len(results.accepted) / span, 1),
        "statuses": {str(k): v for k, v in sorted(results.statuses.items())},
        "errors": dict(results.errors),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": percentile(latencies, 100),
        "max_send_lag_ms": round(results.max_send_lag * 1000, 2),
        "max_in_flight": results.max_in_flight,
        "connections_opened": results.connections_opened,
        "generator_cpu_s": round(
            cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime, 2
        ),
        "accepted_indexes": sorted(results.accepted),
        "start_monotonic": start - now_perf + now_mono,
        "start_wall": start - now_perf + now_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="file written by bench.payloads")
    parser.add_argument("--rate", type=float, required=True, help="requests per second, constant")
    parser.add_argument("--duration", type=float, required=True, help="seconds of sending")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = payloads.read(args.bodies)
    started = time.time()
    result = run(args.url, rows, args.rate, args.duration, args.timeout)
    result["started"] = started
    args.out.write_text(json.dumps(result))
    print(json.dumps({k: v for k, v in result.items() if k != "accepted_indexes"}))


if __name__ == "__main__":
    main()
