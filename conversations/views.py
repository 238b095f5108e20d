from __future__ import annotations

import functools
import hmac
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from conversations import jobs
from conversations.models import Inbox
from conversations.whatsapp import signature, store

logger = logging.getLogger(__name__)
security_log = logging.getLogger("atende.security")

_clock = time.monotonic


class _Secrets:
    """The active inboxes' app secrets, per process.

    Read on every webhook, so kept for ``TTL`` seconds. A signature that matches none of them
    reloads them (a secret just added in the admin works at once), but at most once per
    ``RELOAD_INTERVAL``: anyone can POST badly signed bodies, and each reload is a query. A
    secret added in the admin while such a flood goes on works within that second."""

    TTL = 30.0
    RELOAD_INTERVAL = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._loaded = float("-inf")
        self._reloaded = float("-inf")
        self._values: list[str] = []

    def get(self) -> list[str]:
        if _clock() - self._loaded > self.TTL:
            self._load()
        return self._values

    def reload(self) -> list[str] | None:
        """Fresh secrets, or None when a reload ran less than RELOAD_INTERVAL ago."""
        with self._lock:
            now = _clock()
            if now - self._reloaded < self.RELOAD_INTERVAL:
                return None
            self._reloaded = now
        self._load()
        return self._values

    def _load(self) -> None:
        values = sorted(set(Inbox.objects.active().exclude(app_secret="").values_list("app_secret", flat=True)))
        self._values, self._loaded = values, _clock()


_secrets = _Secrets()


def _verified(body: bytes, header: str) -> bool:
    if not header:
        return False
    if signature.verify(body, header, _secrets.get()) is not None:
        return True
    fresh = _secrets.reload()
    return fresh is not None and signature.verify(body, header, fresh) is not None


def _text(content: str, status: int = 200) -> HttpResponse:
    return HttpResponse(content, status=status, content_type="text/plain")


def _never_500(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Meta retries a webhook answered with a 5xx, and a 500 page is no answer to a machine: a
    database that cannot be reached (or anything unexpected) answers 503, and Meta tries again."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        try:
            return view(request)
        except DatabaseError:
            logger.exception("webhook: database unavailable")
        except Exception:
            logger.exception("webhook: unexpected error")
        return _text("Service Unavailable", 503)

    return wrapper


def _verify_handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if mode == "subscribe" and token and challenge:
        tokens = Inbox.objects.active().exclude(verify_token="").values_list("verify_token", flat=True)
        if any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            return _text(challenge)
    security_log.warning("webhook verification refused from %s", request.META.get("REMOTE_ADDR"))
    return _text("Forbidden", 403)


class _TooLarge(Exception):
    pass


class _LengthRequired(Exception):
    pass


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """The raw body, whole, up to ``limit`` bytes.

    A chunked request (``Transfer-Encoding: chunked``) has no Content-Length, and Django reads
    a WSGI body only up to the Content-Length: it would see an empty body, whose signature never
    matches. Servers that decode chunked bodies say so with ``wsgi.input_terminated`` (gunicorn
    does): read to the end of the stream. Others pass the chunk framing through, which cannot
    be read safely here: 411, so the sender retries with a length."""
    meta = request.META
    if (
        "wsgi.input" in meta
        and not meta.get("CONTENT_LENGTH")
        and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        if not meta.get("wsgi.input_terminated"):
            raise _LengthRequired
        stream, parts, size = meta["wsgi.input"], [], 0
        while size <= limit:
            part = stream.read(min(64 * 1024, limit + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
        if size > limit:
            raise _TooLarge
        return b"".join(parts)
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise _TooLarge
    try:
        body = request.body
    except RequestDataTooBig:
        raise _TooLarge from None
    if len(body) > limit:
        raise _TooLarge
    return body


@csrf_exempt
@require_http_methods(["GET", "POST"])
@_never_500
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify_handshake(request)

    try:
        body = _read_body(request, settings.WEBHOOK_MAX_BODY_BYTES)
    except _TooLarge:
        return _text("Payload Too Large", 413)
    except _LengthRequired:
        return _text("Length Required: this server cannot read a chunked body; send Content-Length", 411)

    # META, not request.headers: the webhook is the hottest path and building the headers
    # mapping costs more than the HMAC.
    header = request.META.get("HTTP_X_HUB_SIGNATURE_256", "")
    remote_addr = request.META.get("REMOTE_ADDR") or None
    try:
        valid = _verified(body, header)
        event_id = store.store_event(body, signature=header, signature_valid=valid, remote_addr=remote_addr)
    except DatabaseError:
        # Nothing is stored, so Meta must retry: answer with a clear non-200.
        logger.exception("could not store webhook event")
        return _text("Service Unavailable", 503)

    if not valid:
        security_log.warning(
            "webhook signature %s from %s, event %s kept, not processed",
            "missing" if not header else "invalid",
            remote_addr,
            event_id,
        )
        if not header:
            return _text("Missing signature", 401)
        return _text("Invalid signature", 403)

    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Embedded mode: no broker, so the event is applied right here.
        jobs.enqueue(jobs.PROCESS_WEBHOOK_EVENT, event_id)
    # Otherwise nothing more to do in the request: the dispatcher task (every
    # WEBHOOK_DISPATCH_SECONDS) hands pending events to the workers in batches. Publishing a
    # Celery task here cost more CPU than the rest of the webhook (docs/benchmarks.md).
    return _text("OK")
