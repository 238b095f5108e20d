"""A stand-in for Meta's Graph API (WhatsApp Cloud API), served by the app itself in the
embedded mode (``WHATSAPP_GRAPH_URL`` = ``SITE_URL/demo/graph/v24.0``).

It accepts every request ``conversations.whatsapp.graph.GraphClient`` makes and answers with
Meta's shapes: sends of every type and mark-as-read (``POST /<pnid>/messages``), uploads
(``POST /<pnid>/media``), media URL look-ups (``GET /<media_id>``), downloads (with the same
Bearer token, from a URL valid for 5 minutes) and the template list
(``GET /<waba_id>/message_templates``). Errors use Meta's error object and codes (190 for a
bad token, 100 for a bad parameter), so our client classifies them as it would Meta's.

A send is kept in ``demo.network`` (the phone shows it) and reported back like Meta does:
``sent`` and ``delivered`` status webhooks, signed with the inbox's app secret and carrying
``biz_opaque_callback_data``, posted by the courier thread once the answer has gone out;
``read`` when the phone has displayed the message (``demo.phone``). Nothing here writes to
the database (see ``demo.network``).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from conversations.models import SERVICE_WINDOW, Inbox, Message
from demo import catalog, payloads
from demo.guard import demo_only
from demo.network import STATUS_DELAY, Media, Sent, courier, digits, network, new_media_id, new_wamid

SEND_TYPES = frozenset(
    {
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "template",
        "reaction",
    }
)
MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})
UPLOAD_MAX = 100 * 1024 * 1024
# Meta's download URLs expire after 5 minutes.
URL_SECONDS = 300
_URL_SALT = "demo.graph.media-url"


def graph_error(
    code: int, message: str, *, status: int = 400, details: str = "", subcode: int | None = None
) -> JsonResponse:
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}" if code not in (190,) else message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or message},
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return JsonResponse({"error": error}, status=status)


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    return header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""


def _bad_token() -> JsonResponse:
    return graph_error(190, "Invalid OAuth access token - Cannot parse access token", status=401)


def _unknown_object(node: str, method: str) -> JsonResponse:
    return graph_error(
        100,
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation.",
        subcode=33,
    )


def _inbox_for(request: HttpRequest, phone_number_id: str) -> Inbox | JsonResponse:
    """The inbox a phone-number route names, if the request carries its token."""
    token = _bearer(request)
    if not token:
        return _bad_token()
    inbox = Inbox.objects.active().filter(phone_number_id=phone_number_id).first()
    if inbox is None:
        return _unknown_object(phone_number_id, request.method.lower())
    if not hmac.compare_digest(token.encode(), inbox.access_token.encode()):
        return _bad_token()
    return inbox


def _token_known(request: HttpRequest) -> bool:
    token = _bearer(request)
    return bool(token) and Inbox.objects.active().filter(access_token=token).exists()


class _ThenReport(JsonResponse):
    """A JSON answer that runs ``after`` once it has been sent: the server calls ``close()``
    after writing the body, so status webhooks never overtake the answer they follow."""

    def __init__(self, data: dict[str, Any], after: Callable[[], None]) -> None:
        super().__init__(data)
        self._after = after

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._after()


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@csrf_exempt
@demo_only
@require_POST
def messages(request: HttpRequest, version: str, node: str) -> HttpResponse:
    inbox = _inbox_for(request, node)
    if isinstance(inbox, JsonResponse):
        return inbox
    data = _json_body(request)
    if data is None:
        return graph_error(100, "Invalid parameter", details="The request body is not a JSON object.")
    if data.get("messaging_product") != "whatsapp":
        return graph_error(100, "The parameter messaging_product is required.")
    if data.get("status") == "read":
        return _mark_read(inbox, data)
    return _send(request, inbox, data)


def _mark_read(inbox: Inbox, data: dict[str, Any]) -> HttpResponse:
    wamid = str(data.get("message_id") or "")
    if not wamid:
        return graph_error(100, "The parameter message_id is required.")
    # A read (no write): which customer the message came from, for the typing indicator.
    wa_id = (
        Message.objects.filter(wamid=wamid, conversation__inbox=inbox, direction=Message.Direction.IN)
        .values_list("conversation__customer__wa_id", flat=True)
        .first()
    )
    if wa_id is None:
        return graph_error(100, "Invalid parameter", details=f"Message {wamid} was not found.")
    network.mark_read(
        wamid, phone_number_id=inbox.phone_number_id, wa_id=wa_id, typing=isinstance(data.get("typing_indicator"), dict)
    )
    return JsonResponse({"success": True})


def _send(request: HttpRequest, inbox: Inbox, data: dict[str, Any]) -> HttpResponse:
    to = str(data.get("to") or data.get("recipient") or "")
    if not to:
        return graph_error(100, "The parameter to is required.")
    kind = str(data.get("type") or "text")
    if kind not in SEND_TYPES:
        return graph_error(100, "Invalid parameter", details=f"Param type must be one of {sorted(SEND_TYPES)}.")
    body = data.get(kind)
    if not isinstance(body, dict):
        return graph_error(100, f"The parameter {kind} is required.")
    problem = _check_body(kind, body)
    if problem:
        return graph_error(100, "Invalid parameter", details=problem)
    if kind != "template" and not _window_open(inbox, digits(to)):
        return graph_error(
            131047,
            "Re-engagement message",
            details="Message failed to send because more than 24 hours have passed since the customer last "
            "replied to this number.",
        )
    sent = Sent(
        wamid=new_wamid(),
        phone_number_id=inbox.phone_number_id,
        to=digits(to) or to,
        type=kind,
        body=data,
        at=timezone.now(),
        webhook_url=request.build_absolute_uri(reverse("whatsapp-webhook")),
    )
    network.record_send(sent)
    answer: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": sent.to}],
        "messages": [{"id": sent.wamid}],
    }
    if kind == "template":
        answer["messages"][0]["message_status"] = "accepted"

    def report() -> None:
        # Meta reports only ``sent`` for reactions; the phone is online, so everything else
        # is delivered a moment later. ``read`` waits for the phone to show it.
        courier.post(sent.webhook_url, payloads.status(inbox, sent, "sent"), inbox.app_secret, delay=STATUS_DELAY)
        if kind != "reaction":
            courier.post(
                sent.webhook_url, payloads.status(inbox, sent, "delivered"), inbox.app_secret, delay=2 * STATUS_DELAY
            )

    return _ThenReport(answer, report)


def _window_open(inbox: Inbox, wa_id: str) -> bool:
    """Meta's 24-hour customer service window, from the customer's last message (a read)."""
    last = (
        Message.objects.filter(
            conversation__inbox=inbox, conversation__customer__wa_id=wa_id, direction=Message.Direction.IN
        )
        .order_by("-wa_timestamp")
        .values_list("wa_timestamp", flat=True)
        .first()
    )
    return last is not None and timezone.now() - last < SERVICE_WINDOW


def _check_body(kind: str, body: dict[str, Any]) -> str:
    """Meta's own validation, roughly: what it would refuse with code 100."""
    if kind == "text":
        text = body.get("body")
        if not isinstance(text, str) or not text.strip():
            return "The parameter text['body'] is required."
        if len(text) > 4096:
            return "The parameter text['body'] must be at most 4096 characters long."
    elif kind in MEDIA_KINDS:
        media_id, link = body.get("id"), body.get("link")
        if not media_id and not link:
            return f"The parameter {kind}['id'] or {kind}['link'] is required."
        if media_id and network.get_media(str(media_id)) is None:
            return f"Media ID {media_id} does not exist or was not uploaded by this business."
    elif kind == "reaction" and not body.get("message_id"):
        return "The parameter reaction['message_id'] is required."
    elif kind == "template":
        if not body.get("name") or not isinstance(body.get("language"), dict):
            return "The parameters template['name'] and template['language'] are required."
    elif kind == "interactive":
        if body.get("type") not in (
            "button",
            "list",
            "cta_url",
            "product",
            "product_list",
            "flow",
            "location_request_message",
        ):
            return "The parameter interactive['type'] is required."
    elif kind == "location" and (body.get("latitude") is None or body.get("longitude") is None):
        return "The parameters location['latitude'] and location['longitude'] are required."
    return ""


@csrf_exempt
@demo_only
@require_POST
def upload(request: HttpRequest, version: str, node: str) -> HttpResponse:
    inbox = _inbox_for(request, node)
    if isinstance(inbox, JsonResponse):
        return inbox
    file = request.FILES.get("file")
    if request.POST.get("messaging_product") != "whatsapp":
        return graph_error(100, "The parameter messaging_product is required.")
    if file is None:
        return graph_error(100, "The parameter file is required.")
    if file.size > UPLOAD_MAX:
        return graph_error(131053, "Media upload error", details="The file is larger than 100 MB.")
    mime = (request.POST.get("type") or file.content_type or "application/octet-stream").split(";")[0].strip()
    media = network.add_media(Media(id=new_media_id(), content=file.read(), mime_type=mime, filename=file.name or ""))
    return JsonResponse({"id": media.id})


@csrf_exempt
@demo_only
@require_GET
def node(request: HttpRequest, version: str, node: str) -> HttpResponse:
    """``GET /<media_id>``: a media's metadata and a download URL valid for 5 minutes."""
    if not _token_known(request):
        return _bad_token()
    media = network.get_media(node)
    if media is None:
        return _unknown_object(node, "get")
    url = request.build_absolute_uri(reverse("demo:graph-file", args=[media.id]))
    signed = signing.dumps(media.id, salt=_URL_SALT)
    return JsonResponse(
        {
            "messaging_product": "whatsapp",
            "url": f"{url}?hash={signed}",
            "mime_type": media.mime_type,
            "sha256": media.sha256_hex,
            "file_size": len(media.content),
            "id": media.id,
        }
    )


@csrf_exempt
@demo_only
@require_GET
def download(request: HttpRequest, media_id: str) -> HttpResponse:
    """The file itself: like Meta's, it needs the Bearer token, and the URL expires."""
    if not _token_known(request):
        return _bad_token()
    try:
        valid = signing.loads(request.GET.get("hash", ""), salt=_URL_SALT, max_age=URL_SECONDS) == media_id
    except signing.BadSignature:
        valid = False
    media = network.get_media(media_id) if valid else None
    if media is None:
        return HttpResponse("URL signature expired", status=404, content_type="text/plain")
    response = HttpResponse(media.content, content_type=media.mime_type)
    response["Content-Length"] = str(len(media.content))
    return response


@csrf_exempt
@demo_only
@require_GET
def templates(request: HttpRequest, version: str, node: str) -> HttpResponse:
    """``GET /<waba_id>/message_templates``: the demo business's approved templates, paged
    with ``limit`` and ``after`` cursors like Meta's."""
    token = _bearer(request)
    inbox = Inbox.objects.active().filter(waba_id=node).first() if token else None
    if inbox is None:
        return _unknown_object(node, "get") if token else _bad_token()
    if not hmac.compare_digest(token.encode(), inbox.access_token.encode()):
        return _bad_token()
    try:
        limit = max(1, min(int(request.GET.get("limit", "25")), 250))
        start = int(base64.urlsafe_b64decode(request.GET["after"]).decode()) if request.GET.get("after") else 0
    except (ValueError, UnicodeDecodeError):
        return graph_error(100, "Invalid parameter", details="Bad limit or cursor.")
    page = catalog.TEMPLATES[start : start + limit]
    cursor = base64.urlsafe_b64encode(str(start + len(page)).encode()).decode()
    paging: dict[str, Any] = {
        "cursors": {"before": base64.urlsafe_b64encode(str(start).encode()).decode(), "after": cursor}
    }
    if start + len(page) < len(catalog.TEMPLATES):
        paging["next"] = request.build_absolute_uri(f"{request.path}?limit={limit}&after={cursor}")
    return JsonResponse({"data": page, "paging": paging})
