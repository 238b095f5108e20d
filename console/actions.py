"""Console: what an attendant does to a conversation, and the composer.

Every endpoint here is a POST under ``/console/c/<id>/`` (CSRF-checked), looks the
conversation up with ``access.get_conversation_for_user(..., write=True)`` and calls a service
(``handoffs.services`` for ownership, ``conversations.outbound`` for sends,
``conversations.services`` for notes, labels and customer notes). A refusal changes nothing and
is shown to the person with its translated message: 403 (not this person), 409 (not in this
state: closed, window closed, paused inbox, someone else took it) or 400 (a bad value).

HTMX posts answer with the fragments to swap: the composer (the target) and, out of band, the
header's action buttons. New messages and the header reach every screen, this one included,
through the live socket (``message.created``/``conversation.updated``), so a response never
inserts a message itself (it would show twice). Plain posts redirect back to the conversation,
or answer a small page with the refusal.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from conversations import access, outbound, services, templates_sync
from conversations.media import ALLOWED_MIME_TYPES, base_mime
from conversations.models import CannedResponse, Conversation, Label, Membership, Message, MessageTemplate
from handoffs import services as handoffs
from handoffs.models import OwnershipChange
from handoffs.services import TransitionRefused

Status = Conversation.Status
Action = OwnershipChange.Action
TEMPLATE = "console/composer.html"
NOTES_MAX = 5000
RESOLUTION_MAX = 2000
CANNED_LIMIT = 8


class Refused(Exception):
    """A refusal for the person: ``status`` is 400, 403 or 409."""

    def __init__(self, message: Any, status: int) -> None:
        super().__init__(str(message))
        self.message = message
        self.status = status


REFUSAL_STATUS = {
    TransitionRefused.FORBIDDEN: 403,
    TransitionRefused.CONFLICT: 409,
    TransitionRefused.INVALID: 400,
}


def _send_refusal(exc: outbound.SendRefused) -> Refused:
    return Refused(exc.message, 400 if exc.reason == "invalid" else 409)


# --- Who may write to the customer --------------------------------------------------------------


def reply_refusal(user: Any, conversation: Conversation, role: str | None) -> Refused | None:
    """Why this person may not write to the customer now, or None. The current owner may, and
    so may supervisors of the inbox and admins (in any open state); an attendant must take a
    queued or bot conversation over first."""
    if conversation.status == Status.CLOSED:
        return Refused(gettext("This conversation is closed: reopen it to write to the customer."), 409)
    if access.is_admin(user) or role == Membership.Role.SUPERVISOR:
        return None
    if role is not None and conversation.status == Status.ASSIGNED and conversation.assignee_id == user.pk:
        return None
    if conversation.status == Status.ASSIGNED:
        return Refused(gettext("Only the attendant holding this conversation can write to the customer."), 403)
    return Refused(gettext("Take this conversation over to write to the customer."), 403)


def _check_reply(request: HttpRequest, conversation: Conversation) -> None:
    refusal = reply_refusal(request.user, conversation, access.role_in(request.user, conversation.inbox_id))
    if refusal is not None:
        raise refusal


# --- The composer's context ----------------------------------------------------------------------


def _templates(conversation: Conversation) -> list[dict[str, Any]]:
    approved = MessageTemplate.objects.filter(inbox_id=conversation.inbox_id, status=MessageTemplate.Status.APPROVED)
    return [
        {
            "template": template,
            "parameters": templates_sync.parameters(template),
            "header": templates_sync.header_text(template),
            "body": templates_sync.body_text(template),
        }
        for template in approved.order_by("name", "language")
    ]


def labels_for(conversation: Conversation) -> list[Label]:
    return list(Label.objects.filter(Q(inbox_id=conversation.inbox_id) | Q(inbox__isnull=True)).order_by("name", "id"))


def composer_context(request: HttpRequest, conversation: Conversation) -> dict[str, Any]:
    """What ``console/composer.html`` needs for this person and conversation (its partials
    ``composer``, ``actions``, ``labels`` and ``customer-notes``). About seven queries."""
    user = request.user
    role = access.role_in(user, conversation.inbox_id)
    actions = handoffs.available_actions(user, conversation)
    refusal = reply_refusal(user, conversation, role)
    window_open = conversation.is_window_open()
    may_reply = refusal is None
    assignable: list[Any] = []
    if Action.TRANSFER in actions or Action.ASSIGN in actions:
        assignable = [u for u in access.assignable_users(conversation.inbox_id) if u.pk != conversation.assignee_id]
    all_labels = labels_for(conversation)
    current = set(conversation.labels.values_list("pk", flat=True))
    return {
        "conversation": conversation,
        "available_actions": actions,
        "may_take_over": Action.TAKE_OVER in actions,
        "may_transfer": bool(actions & {Action.TRANSFER, Action.ASSIGN, Action.TO_QUEUE, Action.TO_BOT}),
        "assignable": assignable,
        "may_reply": may_reply,
        # A paused or disabled inbox sends nothing: the composer offers only a note then.
        "may_send": may_reply and conversation.inbox.is_active and not conversation.inbox.sending_paused_reason,
        "reply_refusal": refusal.message if refusal else "",
        "window_open": window_open,
        "window_closes_at": conversation.window_closes_at(),
        "paused_reason": conversation.inbox.sending_paused_reason,
        "inbox_active": conversation.inbox.is_active,
        "composer_templates": _templates(conversation) if may_reply and not window_open else [],
        "composer_labels": [(label, label.pk in current) for label in all_labels],
        "customer": conversation.customer,
        "notes_max": NOTES_MAX,
    }


# --- Responses -------------------------------------------------------------------------------------


def _fresh(request: HttpRequest, pk: int) -> Conversation:
    # Re-read after a write: the fragments show the state as committed (read access is enough
    # now: after "transfer to the queue" an attendant may still see it but no longer act).
    return access.get_conversation_for_user(request.user, pk)


def _fragments(
    request: HttpRequest, conversation: Conversation, *, error: Any = None, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {**composer_context(request, conversation), "error": error or "", **extra}
    html = render_to_string(f"{TEMPLATE}#composer", context, request)
    html += render_to_string(f"{TEMPLATE}#actions", {**context, "oob": True}, request)
    html += render_to_string(f"{TEMPLATE}#labels", {**context, "oob": True}, request)
    response = HttpResponse(html, status=status)
    if error:
        # composer.js swaps these 4xx answers in (htmx leaves error responses out by default).
        response["X-Console-Refusal"] = "1"
    return response


def _done(request: HttpRequest, pk: int, **extra: Any) -> HttpResponse:
    # After handing a conversation to another attendant, an attendant may no longer see it:
    # back to the lists then, rather than a 404 for what they just did.
    if not access.conversations_for(request.user).filter(pk=pk).exists():
        if not request.htmx:
            return redirect("console:index")
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("console:index")
        return response
    if not request.htmx:
        return redirect("console:conversation", pk)
    return _fragments(request, _fresh(request, pk), **extra)


def _refused(request: HttpRequest, pk: int, refusal: Refused) -> HttpResponse:
    conversation = _fresh(request, pk)
    if not request.htmx:
        context = {"conversation": conversation, "error": refusal.message}
        return render(request, TEMPLATE, context, status=refusal.status)
    return _fragments(request, conversation, error=refusal.message, status=refusal.status)


def _run(request: HttpRequest, pk: int, work: Any) -> HttpResponse:
    """Look the conversation up for writing, do ``work(conversation)``, answer."""
    conversation = access.get_conversation_for_user(request.user, pk, write=True)
    try:
        result = work(conversation)
    except Refused as refusal:
        return _refused(request, pk, refusal)
    except TransitionRefused as exc:
        return _refused(request, pk, Refused(exc.message, REFUSAL_STATUS.get(exc.code, 400)))
    except outbound.SendRefused as exc:
        return _refused(request, pk, _send_refusal(exc))
    return _done(request, pk, **(result if isinstance(result, dict) else {}))


def _message_in(conversation: Conversation, value: Any) -> Message:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise Refused(gettext("That message is not in this conversation."), 400) from None
    message = Message.objects.select_related("conversation").filter(conversation=conversation, pk=pk).first()
    if message is None:
        raise Refused(gettext("That message is not in this conversation."), 400)
    return message


# --- Ownership -------------------------------------------------------------------------------------


@login_required
@require_POST
def take_over(request: HttpRequest, pk: int) -> HttpResponse:
    return _run(request, pk, lambda c: handoffs.take_over(c, request.user))


@login_required
@require_POST
def transfer(request: HttpRequest, pk: int) -> HttpResponse:
    """``to``: "queue", "bot", or the id of a member of the inbox."""

    def work(conversation: Conversation) -> None:
        to = request.POST.get("to", "")
        reason = request.POST.get("reason", "")[:RESOLUTION_MAX]
        if to == "queue":
            handoffs.transfer_to_queue(conversation, request.user, reason=reason)
        elif to == "bot":
            handoffs.transfer_to_bot(conversation, request.user, reason=reason)
        else:
            assignee = access.assignable_users(conversation.inbox_id).filter(pk=to if to.isdigit() else None).first()
            if assignee is None:
                raise Refused(gettext("Choose an attendant of this inbox, the queue or the bot."), 400)
            if conversation.status == Status.ASSIGNED:
                handoffs.transfer_to_attendant(conversation, request.user, assignee, reason=reason)
            else:
                handoffs.assign(conversation, request.user, assignee, reason=reason)

    return _run(request, pk, work)


@login_required
@require_POST
def close(request: HttpRequest, pk: int) -> HttpResponse:
    def work(conversation: Conversation) -> None:
        resolution = request.POST.get("resolution", "").strip()
        if len(resolution) > RESOLUTION_MAX:
            raise Refused(
                gettext("A resolution note can have at most %(max)s characters.") % {"max": RESOLUTION_MAX}, 400
            )
        with transaction.atomic():
            handoffs.close(conversation, request.user, resolution=resolution)
            services.set_resolution(conversation, resolution)

    return _run(request, pk, work)


@login_required
@require_POST
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    def work(conversation: Conversation) -> None:
        to = request.POST.get("to") or None
        if to not in (None, Status.QUEUED, Status.BOT, Status.ASSIGNED):
            raise Refused(gettext("Choose where the conversation goes."), 400)
        handoffs.reopen(conversation, request.user, to=to)

    return _run(request, pk, work)


# --- Writing ------------------------------------------------------------------------------------------


def _media_type(mime: str) -> str:
    """What WhatsApp calls this file: an image, video or audio when it accepts the format as
    such, a document otherwise (a GIF or a WebP photo goes as a file, not refused)."""
    for kind in ("image", "video", "audio"):
        if mime.startswith(f"{kind}/") and mime in ALLOWED_MIME_TYPES[kind]:
            return kind
    return "document"


@login_required
@require_POST
@transaction.non_atomic_requests
def send(request: HttpRequest, pk: int) -> HttpResponse:
    """The composer's form: text (or a caption with a file), a reply to a message, or, with
    ``note`` set, an internal note (stored, never sent)."""

    def work(conversation: Conversation) -> dict[str, Any] | None:
        text = request.POST.get("text", "")
        upload = request.FILES.get("file")
        if request.POST.get("note"):
            if not text.strip():
                raise Refused(gettext("Type the note before saving it."), 400)
            if len(text) > NOTES_MAX:
                raise Refused(gettext("A note can have at most %(max)s characters.") % {"max": NOTES_MAX}, 400)
            services.add_note(conversation, request.user, text)
            return {"note_mode": True}
        _check_reply(request, conversation)
        reply_to = _message_in(conversation, request.POST["reply_to"]) if request.POST.get("reply_to") else None
        if upload is not None:
            mime = base_mime(upload.content_type or mimetypes.guess_type(upload.name or "")[0] or "")
            # Outside any transaction (non_atomic_requests): send_media writes the file first
            # and keeps it only if the row commits.
            outbound.send_media(
                conversation,
                media_type=_media_type(mime),
                file=upload,
                caption=text.strip(),
                filename=upload.name or "",
                mime_type=mime,
                sender=request.user,
            )
        else:
            outbound.send_text(conversation, text, sender=request.user, reply_to=reply_to)
        return None

    return _run(request, pk, work)


@login_required
@require_POST
def react(request: HttpRequest, pk: int) -> HttpResponse:
    def work(conversation: Conversation) -> None:
        _check_reply(request, conversation)
        message = _message_in(conversation, request.POST.get("message"))
        if message.direction == Message.Direction.INTERNAL:
            raise Refused(gettext("This message cannot be reacted to."), 400)
        outbound.send_reaction(message, request.POST.get("emoji", ""), sender=request.user)

    return _run(request, pk, work)


@login_required
@require_POST
def send_template(request: HttpRequest, pk: int) -> HttpResponse:
    def work(conversation: Conversation) -> None:
        _check_reply(request, conversation)
        raw = request.POST.get("template", "")
        template = (
            MessageTemplate.objects.filter(
                inbox_id=conversation.inbox_id,
                status=MessageTemplate.Status.APPROVED,
                pk=raw if raw.isdigit() else None,
            ).first()
            if raw
            else None
        )
        if template is None:
            raise Refused(gettext("Choose one of this inbox's approved templates."), 400)
        try:
            components = templates_sync.components_for(template, request.POST)
        except ValueError as exc:
            raise Refused(str(exc), 400) from None
        outbound.send_template(conversation, template.name, template.language, components or None, sender=request.user)

    return _run(request, pk, work)


@login_required
@require_POST
def send_again(request: HttpRequest, pk: int, message_pk: int) -> HttpResponse:
    def work(conversation: Conversation) -> None:
        _check_reply(request, conversation)
        message = _message_in(conversation, message_pk)
        outbound.send_again(message, request.user)

    return _run(request, pk, work)


# --- Labels and customer notes ------------------------------------------------------------------------


@login_required
@require_POST
def labels(request: HttpRequest, pk: int) -> HttpResponse:
    """The whole set of labels (checkboxes ``label``); ``add``/``remove`` change one."""

    def work(conversation: Conversation) -> None:
        def ids(values: list[str]) -> set[int]:
            if not all(v.isdigit() for v in values):
                raise Refused(gettext("Choose labels of this inbox."), 400)
            return {int(v) for v in values}

        if "add" in request.POST or "remove" in request.POST:
            chosen = set(conversation.labels.values_list("pk", flat=True))
            chosen |= ids(request.POST.getlist("add"))
            chosen -= ids(request.POST.getlist("remove"))
        else:
            chosen = ids(request.POST.getlist("label"))
        try:
            services.set_labels(conversation, chosen, request.user)
        except ValueError:
            raise Refused(gettext("Choose labels of this inbox."), 400) from None

    return _run(request, pk, work)


@login_required
@require_POST
def customer_notes(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation_for_user(request.user, pk, write=True)
    text = request.POST.get("notes", "")
    if len(text) > NOTES_MAX:
        refusal = Refused(gettext("Notes can have at most %(max)s characters.") % {"max": NOTES_MAX}, 400)
        if not request.htmx:
            return _refused(request, pk, refusal)
        context = {**composer_context(request, conversation), "error": refusal.message, "draft": text}
        response = HttpResponse(render_to_string(f"{TEMPLATE}#customer-notes", context, request), status=400)
        response["X-Console-Refusal"] = "1"
        return response
    services.set_customer_notes(conversation.customer, text, request.user)
    if not request.htmx:
        return redirect("console:conversation", pk)
    conversation.customer.refresh_from_db(fields=["notes"])
    context = {"conversation": conversation, "customer": conversation.customer, "notes_max": NOTES_MAX, "saved": True}
    return HttpResponse(render_to_string(f"{TEMPLATE}#customer-notes", context, request))


# --- Reads: canned responses, the next waiting conversation ---------------------------------------------


@login_required
@require_GET
def canned(request: HttpRequest, pk: int) -> HttpResponse:
    """Canned responses of the conversation's inbox and global ones matching ``q`` (what follows
    the ``/`` in the composer), as the picker's fragment."""
    conversation = access.get_conversation_for_user(request.user, pk)
    query = request.GET.get("q", "").strip().lstrip("/")[:40]
    matches = CannedResponse.objects.filter(Q(inbox_id=conversation.inbox_id) | Q(inbox__isnull=True))
    if query:
        matches = matches.filter(Q(shortcut__istartswith=query) | Q(title__icontains=query))
    # The inbox's own answer wins over a global one with the same shortcut (listed first).
    matches = matches.order_by("shortcut", F("inbox_id").asc(nulls_last=True))[:CANNED_LIMIT]
    context = {"conversation": conversation, "canned": list(matches), "query": query}
    return HttpResponse(render_to_string(f"{TEMPLATE}#canned", context, request))


@login_required
@require_GET
def next_waiting(request: HttpRequest) -> HttpResponse:
    """Alt+N: the conversation waiting longest in a queue this person may take (the queue
    list's first row), or the queue itself when nobody waits."""
    waiting = (
        access.writable_conversations_for(request.user)
        .select_related(None)
        .waiting()
        .longest_waiting_first()
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is None:
        return redirect(f"{reverse('console:index')}?view=queue")
    return redirect("console:conversation", waiting)


urlpatterns: list[URLPattern] = [
    path("next/", next_waiting, name="next"),
    path("c/<int:pk>/take-over/", take_over, name="take-over"),
    path("c/<int:pk>/transfer/", transfer, name="transfer"),
    path("c/<int:pk>/close/", close, name="close"),
    path("c/<int:pk>/reopen/", reopen, name="reopen"),
    path("c/<int:pk>/send/", send, name="send"),
    path("c/<int:pk>/react/", react, name="react"),
    path("c/<int:pk>/template/", send_template, name="send-template"),
    path("c/<int:pk>/m/<int:message_pk>/send-again/", send_again, name="send-again"),
    path("c/<int:pk>/labels/", labels, name="labels"),
    path("c/<int:pk>/customer-notes/", customer_notes, name="customer-notes"),
    path("c/<int:pk>/canned/", canned, name="canned"),
]
