"""``/demo/phone/``: a customer's WhatsApp, for the demo and the tests (embedded mode only).

Pick or create a customer, then chat with the business: what the phone sends goes through the
real intake (``demo.customer``); what the business sends arrives through the Graph API
stand-in (``demo.graph``) and is polled every second (htmx, ``#phone-chat``). The customer's
identity travels in the URL (``?wa_id=...&name=...``), so two tabs can be two customers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from conversations.models import Customer, Inbox, Message
from demo import chat, customer
from demo.customer import Identity, PhoneError
from demo.guard import demo_only
from demo.network import digits, network

TEMPLATE = "demo/phone.html"
PICKER_LIMIT = 30
# A place to send from the location form: Avenida Paulista, São Paulo.
DEFAULT_LOCATION = {
    "latitude": "-23.561414",
    "longitude": "-46.655881",
    "name": "MASP",
    "address": "Av. Paulista, 1578",
}


def _identity(request: HttpRequest, data: Any) -> Identity | None:
    wa_id = digits(data.get("wa_id", ""))
    if not wa_id:
        return None
    name = data.get("name", "").strip()[:100]
    if not name:
        known = Customer.objects.filter(wa_id=wa_id).values_list("name", flat=True).first()
        name = known or gettext("Customer %(end)s") % {"end": wa_id[-4:]}
    return Identity(wa_id=wa_id, name=name)


def _phone_url(who: Identity) -> str:
    return reverse("demo:phone") + "?" + urlencode({"wa_id": who.wa_id, "name": who.name})


def _webhook_url(request: HttpRequest) -> str:
    # The server the phone page came from is the one whose webhook the business listens on.
    return request.build_absolute_uri(reverse("whatsapp-webhook"))


def _no_inbox(request: HttpRequest) -> HttpResponse:
    return render(request, TEMPLATE, {"no_inbox": True}, status=404)


def _chat_context(request: HttpRequest, inbox: Inbox, who: Identity, *, error: str = "") -> dict[str, Any]:
    bubbles = chat.bubbles_for(inbox, who.wa_id)
    typing = network.is_typing(inbox.phone_number_id, who.wa_id)
    reply_to, canned = chat.quick_replies(bubbles)
    return {
        "inbox": inbox,
        "who": who,
        "bubbles": bubbles,
        "typing": typing,
        "reply_to": reply_to,
        "canned": canned,
        "reactions": chat.REACTIONS,
        "error": error,
        "version": chat.version(bubbles, typing),
        "chat_url": reverse("demo:chat") + "?" + urlencode({"wa_id": who.wa_id, "name": who.name}),
        "location": DEFAULT_LOCATION,
    }


def _shown(
    request: HttpRequest, inbox: Inbox, context: dict[str, Any], template: str, status: int = 200
) -> HttpResponse:
    response = render(request, template, context, status=status)
    # Rendered means on the screen: the business's messages are now read.
    chat.report_read(inbox, context["bubbles"])
    return response


@demo_only
@require_GET
def phone(request: HttpRequest) -> HttpResponse:
    inbox = customer.demo_inbox()
    if inbox is None:
        return _no_inbox(request)
    if "number" in request.GET:
        # The "new customer" form: a name and a number as people type them.
        try:
            wa_id = customer.normalize_number(request.GET["number"])
        except PhoneError as error:
            return render(request, TEMPLATE, _picker_context(inbox, error=str(error.message)), status=400)
        who = _identity(request, {"wa_id": wa_id, "name": request.GET.get("name", "")})
        assert who is not None
        return HttpResponseRedirect(_phone_url(who))
    who = _identity(request, request.GET)
    if who is None:
        return render(request, TEMPLATE, _picker_context(inbox))
    return _shown(request, inbox, _chat_context(request, inbox, who), TEMPLATE)


def _picker_context(inbox: Inbox, *, error: str = "") -> dict[str, Any]:
    customers = (
        Customer.objects.filter(conversations__inbox=inbox)
        .exclude(wa_id="")
        .annotate(last=Max("conversations__last_message"))
        .order_by("-last", "-id")[:PICKER_LIMIT]
    )
    return {
        "inbox": inbox,
        "picker": True,
        "customers": [(c, _phone_url(Identity(c.wa_id, c.name or c.wa_id))) for c in customers],
        "error": error,
    }


@demo_only
@require_GET
def chat_fragment(request: HttpRequest) -> HttpResponse:
    """The poll: the chat again, or 204 (htmx swaps nothing) when nothing changed."""
    inbox = customer.demo_inbox()
    who = _identity(request, request.GET)
    if inbox is None or who is None:
        return _no_inbox(request)
    context = _chat_context(request, inbox, who)
    if request.GET.get("v") == context["version"]:
        return HttpResponse(status=204)
    return _shown(request, inbox, context, f"{TEMPLATE}#chat")


@demo_only
@require_POST
def send(request: HttpRequest) -> HttpResponse:
    inbox = customer.demo_inbox()
    who = _identity(request, request.POST)
    if inbox is None or who is None:
        return _no_inbox(request)
    data, url = request.POST, _webhook_url(request)
    kind = data.get("kind", "text")
    error = ""
    try:
        if kind == "text":
            customer.send_text(inbox, who, data.get("text", ""), url)
        elif kind == "image":
            upload = request.FILES.get("image")
            if upload is None:
                raise PhoneError(gettext("Choose a photo to send."))
            customer.send_image(inbox, who, upload, upload.content_type or "", data.get("caption", ""), url)
        elif kind == "location":
            customer.send_location(
                inbox,
                who,
                data.get("latitude", ""),
                data.get("longitude", ""),
                data.get("place", ""),
                data.get("address", ""),
                url,
            )
        elif kind in ("button_reply", "list_reply", "template"):
            customer.send_reply(
                inbox, who, kind, data.get("reply_id", ""), data.get("title", ""), data.get("context", ""), url
            )
        elif kind == "reaction":
            customer.send_reaction(inbox, who, data.get("message_id", ""), data.get("emoji", ""), url)
        else:
            raise PhoneError(gettext("Unknown kind of message."))
    except PhoneError as exc:
        error = str(exc.message)
    if not request.htmx:
        if not error:
            return HttpResponseRedirect(_phone_url(who))
        return _shown(request, inbox, _chat_context(request, inbox, who, error=error), TEMPLATE, status=400)
    # htmx swaps 2xx answers only: a refused send shows its reason in the chat, with 200.
    return _shown(request, inbox, _chat_context(request, inbox, who, error=error), f"{TEMPLATE}#chat")


@demo_only
@require_GET
def media(request: HttpRequest, message_id: int) -> HttpResponse:
    """A photo on the phone's screen: the stand-in's copy, else the file the app stored."""
    inbox = customer.demo_inbox()
    message = Message.objects.filter(pk=message_id, conversation__inbox=inbox).first() if inbox else None
    if message is None:
        raise Http404
    item = network.get_media(chat.media_id_of(message))
    if item is not None:
        content, mime = item.content, item.mime_type
    elif message.media:
        with message.media.open("rb") as fh:
            content, mime = fh.read(), message.media_mime
    else:
        raise Http404
    response = HttpResponse(content, content_type=mime or "application/octet-stream")
    if not mime.startswith("image/"):
        response["Content-Disposition"] = "attachment"
    return response
