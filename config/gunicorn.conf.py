"""Gunicorn settings: the production HTTP server for pages, the API and webhooks.

Every knob comes from the environment (documented in .env.example); the defaults are the
ones measured in docs/benchmarks.md on a 2-core machine.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"{name} must be an integer, got {value!r}") from None


bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]
wsgi_app = "config.wsgi:application"
# Threads, not more processes: a webhook spends much of its time waiting on PostgreSQL's
# commit and the broker, so a few threads per process overlap those waits, one process per
# core uses the CPUs, and kept-alive connections (which sync workers refuse) save a TCP
# handshake per request. A slow client ties up one thread, not a whole worker.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = _env_int("WEB_CONCURRENCY", os.cpu_count() or 1)
threads = _env_int("GUNICORN_THREADS", 4)
backlog = _env_int("GUNICORN_BACKLOG", 2048)
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak never takes the webhook down; jitter keeps
# them from restarting together.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 2000)
# Load the app once in the master: faster worker boots, shared memory pages.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") not in ("0", "false", "no", "off")
# Access logs are off by default: the reverse proxy in front usually keeps them, and a
# line per webhook costs a measurable share of a small machine (see docs/benchmarks.md).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The control socket (gunicornc) is off unless a path is given: its default lives in the
# home directory, which two servers on one machine would share.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "") or "gunicorn.ctl"
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
# Request bodies are buffered by the worker; webhooks up to WEBHOOK_MAX_BODY_BYTES must fit.
limit_request_line = 8190
