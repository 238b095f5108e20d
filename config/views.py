from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils import translation
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.cache import never_cache

from conversations import dispatch, services
from conversations.models import Alert

logger = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    # The console is where people work; it sends anonymous visitors to the login page.
    return redirect("console:index")


def _check_database() -> dict:
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_redis() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "embedded (in-memory channel layer)"}
    import redis

    started = time.monotonic()
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_broker() -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "embedded (tasks run inline)"}
    from config.celery import app

    started = time.monotonic()
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_webhooks() -> dict:
    """Is anyone processing? With beat and the listener both dead (or every webhook worker),
    events pile up while every service answers pings: the age of the oldest due event and of
    the last dispatch show it, and past their thresholds the check fails and an admin alert
    is raised. The embedded mode applies each event in its request: there is no backlog."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "embedded (events applied in the request)"}
    backlog = dispatch.oldest_due_age()
    last_dispatch = dispatch.last_dispatch_age()
    problems = []
    if backlog is not None and 0 < settings.HEALTH_WEBHOOK_BACKLOG_SECONDS < backlog:
        problems.append(
            (
                f"the oldest unprocessed webhook event has waited {backlog:.0f} s",
                gettext_noop("Webhook events are not being processed"),
            )
        )
    if settings.HEALTH_WEBHOOK_DISPATCH_SECONDS > 0 and (
        last_dispatch is None or last_dispatch > settings.HEALTH_WEBHOOK_DISPATCH_SECONDS
    ):
        waited = "ever" if last_dispatch is None else f"{last_dispatch:.0f} s"
        problems.append(
            (
                f"no webhook dispatch for {waited}: are beat and listen_webhooks running?",
                gettext_noop("Webhook events are not being dispatched (beat and the listener stopped?)"),
            )
        )
    for error, title in problems:
        try:
            # In the workers' language, like every alert; one open alert per title.
            with translation.override(settings.LANGUAGE_CODE):
                services.raise_alert(None, Alert.Kind.WEBHOOK, gettext(title), details=error)
        except Exception:
            logger.exception("could not raise the webhook alert")
    result = {
        "ok": not problems,
        "oldest_due_seconds": None if backlog is None else round(backlog, 1),
        "last_dispatch_seconds": None if last_dispatch is None else round(last_dispatch, 1),
    }
    if problems:
        result["error"] = "; ".join(error for error, _title in problems)
    return result


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Database, Redis, broker and webhook processing state for load balancers and compose
    health checks."""
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("broker", _check_broker),
        ("webhooks", _check_webhooks),
    ):
        try:
            checks[name] = check()
        except Exception as exc:
            logger.warning("health check %s failed: %s", name, exc)
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
