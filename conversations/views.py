from __future__ import annotations

import hmac
import logging
import time

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

# App secrets are read on every webhook; keep them for a few seconds per process and reload
# when a signature does not match (a secret just added in the admin works at once).
_SECRETS_TTL = 30.0
_secrets_cache: tuple[float, list[str]] = (0.0, [])


def _app_secrets(refresh: bool = False) -> list[str]:
    global _secrets_cache
    loaded, secrets = _secrets_cache
    if refresh or time.monotonic() - loaded > _SECRETS_TTL:
        secrets = sorted(set(Inbox.objects.active().exclude(app_secret="").values_list("app_secret", flat=True)))
        _secrets_cache = (time.monotonic(), secrets)
    return secrets


def _verify_handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if mode == "subscribe" and token and challenge:
        tokens = Inbox.objects.active().exclude(verify_token="").values_list("verify_token", flat=True)
        if any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            return HttpResponse(challenge, content_type="text/plain")
    security_log.warning("webhook verification refused from %s", request.META.get("REMOTE_ADDR"))
    return HttpResponse("Forbidden", status=403, content_type="text/plain")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify_handshake(request)

    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return HttpResponse("Payload Too Large", status=413, content_type="text/plain")
    try:
        body = request.body
    except RequestDataTooBig:
        return HttpResponse("Payload Too Large", status=413, content_type="text/plain")
    if len(body) > limit:
        return HttpResponse("Payload Too Large", status=413, content_type="text/plain")

    # META, not request.headers: the webhook is the hottest path and building the headers
    # mapping costs more than the HMAC.
    header = request.META.get("HTTP_X_HUB_SIGNATURE_256", "")
    valid = bool(header) and (
        signature.verify(body, header, _app_secrets()) is not None
        or signature.verify(body, header, _app_secrets(refresh=True)) is not None
    )
    remote_addr = request.META.get("REMOTE_ADDR") or None
    try:
        event_id = store.store_event(body, signature=header, signature_valid=valid, remote_addr=remote_addr)
    except DatabaseError:
        # Nothing is stored, so Meta must retry: answer with a clear non-200.
        logger.exception("could not store webhook event")
        return HttpResponse("Service Unavailable", status=503, content_type="text/plain")

    if not valid:
        security_log.warning(
            "webhook signature %s from %s, event %s kept, not processed",
            "missing" if not header else "invalid",
            remote_addr,
            event_id,
        )
        if not header:
            return HttpResponse("Missing signature", status=401, content_type="text/plain")
        return HttpResponse("Invalid signature", status=403, content_type="text/plain")

    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Embedded mode: no broker, so the event is applied right here.
        jobs.enqueue(jobs.PROCESS_WEBHOOK_EVENT, event_id)
    # Otherwise nothing more to do in the request: the dispatcher task (every
    # WEBHOOK_DISPATCH_SECONDS) hands pending events to the workers in batches. Publishing a
    # Celery task here cost more CPU than the rest of the webhook (docs/benchmarks.md).
    return HttpResponse("OK", content_type="text/plain")
