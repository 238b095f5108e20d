"""Count the SQL statements each bench process sends through Django, by role.

Only under bench.settings: every Django database connection gets an execute wrapper that
adds one to a per-process counter, and a daemon thread adds the counter to a Redis hash
(``atende-bench:queries``, field = role) twice a second. The bench reads the hash before and
after a phase and divides by the messages processed in it.

What it counts is what Django's ``assertNumQueries`` counts: every statement sent through a
Django cursor, savepoints included; not the BEGIN/COMMIT psycopg sends itself, and not the
webhook's INSERT, which goes straight through libpq (conversations/whatsapp/store.py).
It costs one Python call per statement (about a microsecond) and one Redis call per
process every half second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEY = "atende-bench:queries"
FLUSH_SECONDS = 0.5

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "count": 0, "role": "other"}


def _after_fork_in_child() -> None:
    # The parent's flush thread may have held the lock at the fork: the child gets a fresh one.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def role() -> str:
    try:
        cmd = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if "gunicorn" in cmd:
        return "web"
    if "listen_webhooks" in cmd:
        return "listener"
    if "celery" in cmd and " beat" in cmd:
        return "beat"
    if "celery" in cmd:
        # One worker per queue group (compose.yaml): named by its queues.
        queues = cmd.split(" -Q ", 1)[1].split()[0] if " -Q " in cmd else "celery"
        return f"worker {queues}"
    return "other"


def _flush_forever(pid: int) -> None:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    sent = 0
    while True:
        time.sleep(FLUSH_SECONDS)
        with _lock:
            count, name = _state["count"], _state["role"]
        if count != sent and os.getpid() == pid:
            try:
                client.hincrby(KEY, name, count - sent)
                sent = count
            except Exception:  # Redis busy or gone: try again next round
                pass


def _count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    with _lock:
        if _state["pid"] != os.getpid():
            # First statement in this process (a forked Celery or gunicorn worker inherits the
            # parent's counter but not its thread): start counting from zero here.
            _state.update(pid=os.getpid(), count=0, role=role())
            threading.Thread(target=_flush_forever, args=(os.getpid(),), name="bench-querycount", daemon=True).start()
        _state["count"] += 1
    return execute(sql, params, many, context)


def install(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created receiver: wrap the connection once (the wrapper list outlives reconnects)."""
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def read(client: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(KEY).items()}
