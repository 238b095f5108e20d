"""Sending to WhatsApp: every outbound message is written here first, then delivered by a task.

``send_*`` check that the inbox may send and that the 24-hour window is open (templates are the
exception), validate, store the exact Graph body on a pending ``Message`` and queue
``tasks.send_message`` after commit. Nothing is stored and Meta is not called when a check fails.

``deliver`` is what the task runs. It moves the row pending -> sending and commits *before*
calling Meta, so two workers never send the same row, and handles the answer:

- accepted: store the wamid (``services.attach_wamid`` also applies statuses that raced ahead);
- definitely not accepted and worth retrying: back to pending, the task retries with backoff;
- rejected for good: failed, with Meta's reason for the attendant (and an admin alert, and the
  inbox paused, when the token or the account is the problem);
- answer lost (read timeout...): the row stays ``sending``. Meta echoes our
  ``biz_opaque_callback_data`` in the status webhook and ``services.apply_status`` links the row
  then; only if nothing arrives within ``WHATSAPP_SEND_CONFIRM_SECONDS`` does
  ``reconcile_unconfirmed`` send again. Re-sending at once could deliver the message twice.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from conversations import events, services
from conversations.media import ALLOWED_MIME_TYPES, MEDIA_LIMITS, base_mime, extension_for
from conversations.models import MEDIA_TYPES, Conversation, Inbox, Message
from conversations.whatsapp.graph import PAIR_RATE_LIMIT, GraphClient, GraphError

logger = logging.getLogger(__name__)

TEXT_MAX = 4096
CAPTION_MAX = 1024
INTERACTIVE_BODY_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10
LIST_ROW_TITLE_MAX = 24
LIST_ROW_ID_MAX = 200
LIST_ROW_DESCRIPTION_MAX = 72
LIST_SECTION_TITLE_MAX = 24
CAPTION_TYPES = frozenset({"image", "video", "document"})

WINDOW_CLOSED = _(
    "More than 24 hours have passed since the customer's last message: WhatsApp only accepts an "
    "approved template message now."
)
TEMPLATE_NEEDED = _("Not sent: the 24-hour window is closed, so WhatsApp requires an approved template message.")


class SendRefused(Exception):
    """A send was refused before anything was stored or sent; ``message`` is for the user."""

    def __init__(self, message: Any, *, reason: str) -> None:
        super().__init__(str(message))
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return str(self.message)


class InvalidMessage(SendRefused):
    def __init__(self, message: Any) -> None:
        super().__init__(message, reason="invalid")


# --- Checks ---------------------------------------------------------------------------------


def check_can_send(conversation: Conversation, *, template: bool = False) -> None:
    """Raise SendRefused unless this conversation's inbox may send this kind of message now."""
    # Read the inbox fresh: another worker may have paused it a moment ago (token expired).
    inbox = Inbox.objects.only("is_active", "sending_paused_reason").get(pk=conversation.inbox_id)
    if not inbox.is_active:
        raise SendRefused(_("This inbox is disabled."), reason="inactive")
    if inbox.sending_paused_reason:
        raise SendRefused(
            gettext("Sending from this inbox is paused until an administrator fixes it: %(reason)s")
            % {"reason": inbox.sending_paused_reason},
            reason="paused",
        )
    if not template and not conversation.is_window_open():
        raise SendRefused(WINDOW_CLOSED, reason="window_closed")


def _require(condition: bool, message: Any) -> None:
    if not condition:
        raise InvalidMessage(message)


def _check_text(text: str, limit: int, empty: Any, too_long: Any) -> str:
    _require(isinstance(text, str) and bool(text.strip()), empty)
    _require(len(text) <= limit, too_long)
    return text


# --- Storing a message -------------------------------------------------------------------------


def _store(
    conversation: Conversation,
    *,
    type: str,
    body: dict[str, Any],
    sender: AbstractBaseUser | None,
    sender_kind: str,
    template: bool = False,
    text: str = "",
    caption: str = "",
    content: dict | None = None,
    reply_to: Message | None = None,
    media_file: IO[bytes] | None = None,
    media_ext: str = "",
    media_mime: str = "",
    media_filename: str = "",
) -> Message:
    with transaction.atomic():
        # Locked and fresh: the window is computed from the stored last_inbound, and two sends
        # to one conversation update last_message one after the other.
        locked = Conversation.objects.select_for_update(of=("self",)).select_related("customer").get(pk=conversation.pk)
        check_can_send(locked, template=template)
        now = timezone.now()
        message = Message(
            conversation=locked,
            direction=Message.Direction.OUT,
            sender_kind=sender_kind,
            sender=sender,
            type=type,
            text=text,
            caption=caption,
            content=content or body,
            status=Message.Status.PENDING,
            wa_timestamp=now,
            media_mime=media_mime,
            media_filename=media_filename,
        )
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **locked.customer.recipient,
            "type": type,
            type: body,
            # Echoed in the status webhooks: links the row to its wamid if the send's answer is lost.
            "biz_opaque_callback_data": message.callback_data,
        }
        if reply_to is not None and reply_to.wamid:
            payload["context"] = {"message_id": reply_to.wamid}
            message.reply_to = reply_to
            message.context_wamid = reply_to.wamid
        message.payload = payload
        if media_file is not None:
            # The stored name is ours (no customer or attendant text in paths); the original
            # name is kept in media_filename for display and downloads.
            media_name = f"out-{message.uuid}{media_ext}"
            django_file = media_file if isinstance(media_file, File) else File(media_file, name=media_name)
            message.media.save(media_name, django_file, save=False)
            message.media_size = message.media.size
        message.save()
        if locked.last_message is None or now > locked.last_message:
            locked.last_message = now
            locked.save(update_fields=["last_message", "updated"])
        conversation.last_message = locked.last_message
        events.message_created(message)
        _enqueue_send(message.pk)
    return message


def _enqueue_send(message_id: int) -> None:
    from conversations import tasks

    transaction.on_commit(lambda: tasks.enqueue(tasks.send_message, message_id))


# --- Sending services ------------------------------------------------------------------------------


def send_text(
    conversation: Conversation,
    text: str,
    *,
    sender: AbstractBaseUser | None = None,
    sender_kind: str = Message.SenderKind.ATTENDANT,
    reply_to: Message | None = None,
    preview_url: bool = False,
) -> Message:
    _check_text(
        text,
        TEXT_MAX,
        _("Type a message before sending."),
        gettext("A message can have at most %(max)s characters.") % {"max": TEXT_MAX},
    )
    return _store(
        conversation,
        type="text",
        body={"body": text, "preview_url": preview_url},
        text=text,
        sender=sender,
        sender_kind=sender_kind,
        reply_to=reply_to,
    )


def send_media(
    conversation: Conversation,
    *,
    media_type: str,
    file: IO[bytes] | None = None,
    link: str = "",
    caption: str = "",
    filename: str = "",
    mime_type: str = "",
    sender: AbstractBaseUser | None = None,
    sender_kind: str = Message.SenderKind.ATTENDANT,
) -> Message:
    """Send an image, video, audio, document or sticker, from a file (uploaded to Meta by the
    task, kept in our storage) or from a public https link."""
    _require(media_type in MEDIA_TYPES, _("Unsupported media type."))
    _require((file is None) != (not link), _("Attach a file or give a link, not both."))
    if caption:
        _require(media_type in CAPTION_TYPES, _("Only images, videos and documents can have a caption."))
        _require(
            len(caption) <= CAPTION_MAX,
            gettext("A caption can have at most %(max)s characters.") % {"max": CAPTION_MAX},
        )
    body: dict[str, Any] = {}
    if link:
        parts = urlsplit(link)
        _require(parts.scheme == "https" and bool(parts.netloc), _("The link must be an https:// address."))
        body["link"] = link
    if caption:
        body["caption"] = caption
    name = filename or os.path.basename(getattr(file, "name", "") or "") or os.path.basename(urlsplit(link).path)
    if media_type == "document" and name:
        body["filename"] = name[:240]
    media_ext = ""
    mime = ""
    if file is not None:
        mime = base_mime(mime_type or getattr(file, "content_type", "") or mimetypes.guess_type(name)[0] or "")
        _require(
            mime in ALLOWED_MIME_TYPES[media_type],
            gettext("WhatsApp does not accept %(mime)s files as %(kind)s.") % {"mime": mime or "?", "kind": media_type},
        )
        size = _file_size(file)
        limit = MEDIA_LIMITS[media_type]
        _require(
            size <= limit,
            gettext("The file is too large: %(kind)s files can have at most %(max)s.")
            % {"kind": media_type, "max": _human_size(limit)},
        )
        _require(size > 0, _("The file is empty."))
        media_ext = extension_for(mime)
    return _store(
        conversation,
        type=media_type,
        body=body,
        caption=caption,
        sender=sender,
        sender_kind=sender_kind,
        media_file=file,
        media_ext=media_ext,
        media_mime=mime,
        media_filename=name[:500],
    )


def send_template(
    conversation: Conversation,
    name: str,
    language: str,
    components: list[dict[str, Any]] | None = None,
    *,
    sender: AbstractBaseUser | None = None,
    sender_kind: str = Message.SenderKind.ATTENDANT,
) -> Message:
    """The only kind of message WhatsApp accepts outside the 24-hour window."""
    _require(bool(name and name.strip()), _("Choose a template."))
    _require(bool(language and language.strip()), _("Choose the template's language."))
    _require(components is None or isinstance(components, list), _("Template components must be a list."))
    body: dict[str, Any] = {"name": name.strip(), "language": {"code": language.strip()}}
    if components:
        body["components"] = components
    return _store(
        conversation,
        type="template",
        body=body,
        text=name.strip(),
        template=True,
        sender=sender,
        sender_kind=sender_kind,
    )


def send_interactive_buttons(
    conversation: Conversation,
    body: str,
    buttons: list[dict[str, str]] | list[tuple[str, str]],
    *,
    sender: AbstractBaseUser | None = None,
    sender_kind: str = Message.SenderKind.BOT,
) -> Message:
    """Reply buttons; each is ``{"id": ..., "title": ...}`` or an ``(id, title)`` pair."""
    _check_text(
        body,
        INTERACTIVE_BODY_MAX,
        _("Type the message shown above the buttons."),
        gettext("The text above the buttons can have at most %(max)s characters.") % {"max": INTERACTIVE_BODY_MAX},
    )
    pairs = [(b["id"], b["title"]) if isinstance(b, dict) else tuple(b) for b in buttons]
    _require(
        1 <= len(pairs) <= BUTTONS_MAX,
        gettext("A message can have from 1 to %(max)s buttons.") % {"max": BUTTONS_MAX},
    )
    for button_id, title in pairs:
        _require(bool(str(title).strip()), _("Every button needs a title."))
        _require(
            len(str(title)) <= BUTTON_TITLE_MAX,
            gettext("Button titles can have at most %(max)s characters.") % {"max": BUTTON_TITLE_MAX},
        )
        _require(bool(str(button_id)) and len(str(button_id)) <= BUTTON_ID_MAX, _("Every button needs a short id."))
    _require(len({str(b) for b, _t in pairs}) == len(pairs), _("Button ids must be different."))
    interactive = {
        "type": "button",
        "body": {"text": body},
        "action": {"buttons": [{"type": "reply", "reply": {"id": str(b), "title": str(t)}} for b, t in pairs]},
    }
    return _store(conversation, type="interactive", body=interactive, text=body, sender=sender, sender_kind=sender_kind)


def send_interactive_list(
    conversation: Conversation,
    body: str,
    button_label: str,
    sections: list[dict[str, Any]],
    *,
    sender: AbstractBaseUser | None = None,
    sender_kind: str = Message.SenderKind.BOT,
) -> Message:
    """A list menu: ``sections`` is ``[{"title": ..., "rows": [{"id", "title", "description"?}]}]``."""
    _check_text(
        body,
        INTERACTIVE_BODY_MAX,
        _("Type the message shown above the list."),
        gettext("The text above the list can have at most %(max)s characters.") % {"max": INTERACTIVE_BODY_MAX},
    )
    _check_text(
        button_label,
        LIST_BUTTON_MAX,
        _("The list needs a button label."),
        gettext("The list's button label can have at most %(max)s characters.") % {"max": LIST_BUTTON_MAX},
    )
    _require(
        isinstance(sections, list) and 1 <= len(sections) <= LIST_SECTIONS_MAX,
        gettext("A list can have from 1 to %(max)s sections.") % {"max": LIST_SECTIONS_MAX},
    )
    clean_sections = []
    row_ids: list[str] = []
    for section in sections:
        _require(isinstance(section, dict), _("Every list section must have rows."))
        title = str(section.get("title") or "")
        _require(
            len(title) <= LIST_SECTION_TITLE_MAX,
            gettext("Section titles can have at most %(max)s characters.") % {"max": LIST_SECTION_TITLE_MAX},
        )
        # WhatsApp requires a title on every section once there is more than one.
        _require(len(sections) == 1 or bool(title), _("With several sections, each needs a title."))
        rows = section.get("rows")
        _require(isinstance(rows, list) and bool(rows), _("Every list section must have rows."))
        clean_rows = []
        for row in rows:
            _require(isinstance(row, dict) and bool(str(row.get("title") or "").strip()), _("Every row needs a title."))
            row_id, row_title = str(row.get("id") or ""), str(row["title"])
            description = str(row.get("description") or "")
            _require(bool(row_id) and len(row_id) <= LIST_ROW_ID_MAX, _("Every row needs a short id."))
            _require(
                len(row_title) <= LIST_ROW_TITLE_MAX,
                gettext("Row titles can have at most %(max)s characters.") % {"max": LIST_ROW_TITLE_MAX},
            )
            _require(
                len(description) <= LIST_ROW_DESCRIPTION_MAX,
                gettext("Row descriptions can have at most %(max)s characters.") % {"max": LIST_ROW_DESCRIPTION_MAX},
            )
            clean_row = {"id": row_id, "title": row_title}
            if description:
                clean_row["description"] = description
            clean_rows.append(clean_row)
            row_ids.append(row_id)
        clean_section: dict[str, Any] = {"rows": clean_rows}
        if title:
            clean_section["title"] = title
        clean_sections.append(clean_section)
    _require(
        len(row_ids) <= LIST_ROWS_MAX,
        gettext("A list can have at most %(max)s rows in all.") % {"max": LIST_ROWS_MAX},
    )
    _require(len(set(row_ids)) == len(row_ids), _("Row ids must be different."))
    interactive = {
        "type": "list",
        "body": {"text": body},
        "action": {"button": button_label, "sections": clean_sections},
    }
    return _store(conversation, type="interactive", body=interactive, text=body, sender=sender, sender_kind=sender_kind)


def send_reaction(
    message: Message,
    emoji: str,
    *,
    sender: AbstractBaseUser | None = None,
    sender_kind: str = Message.SenderKind.ATTENDANT,
) -> Message:
    """React to a message of the conversation; an empty emoji removes our reaction."""
    reactable = bool(message.wamid) and not str(message.wamid).startswith("noid:")
    _require(reactable, _("This message cannot be reacted to."))
    _require(isinstance(emoji, str) and len(emoji) <= 10, _("Choose one emoji."))
    return _store(
        message.conversation,
        type="reaction",
        body={"message_id": message.wamid, "emoji": emoji},
        text=emoji,
        sender=sender,
        sender_kind=sender_kind,
    )


def mark_read(message: Message, *, typing: bool = False) -> None:
    """Tell the customer we read their message (and, optionally, that we are typing)."""
    _require(
        message.direction == Message.Direction.IN and bool(message.wamid),
        _("Only received messages can be marked as read."),
    )
    check_can_send(message.conversation)
    from conversations import tasks

    transaction.on_commit(lambda: tasks.enqueue(tasks.mark_message_read, message.pk, typing))


def deliver_read(message_id: int, *, typing: bool = False) -> float | None:
    """Run by the mark-read task. Returns a delay when it should be retried."""
    message = Message.objects.select_related("conversation__inbox").filter(pk=message_id).first()
    if message is None or not message.wamid:
        return None
    inbox = message.conversation.inbox
    if inbox.sending_paused_reason or not inbox.is_active:
        return None
    try:
        GraphClient(inbox).mark_read(message.wamid, typing=typing)
    except GraphError as error:
        if error.alert:
            _alert(inbox, error)
        # Marking read twice is harmless, so even an uncertain outcome may be retried.
        if error.retryable or error.uncertain:
            return retry_delay(1, error.code)
    return None


# --- Delivery (the send task) -------------------------------------------------------------------------


@dataclass
class Outcome:
    result: str  # sent | retry | failed | uncertain | skipped
    retry_in: float | None = None


def retry_delay(attempts: int, code: int | None = None) -> float:
    """Seconds before the next try. Pair-rate limits (same customer too often) back off 4^n
    seconds as Meta asks; everything else doubles from 5 s, with jitter so a burst of failed
    sends does not come back as a burst."""
    attempts = max(attempts, 1)
    if code == PAIR_RATE_LIMIT:
        return float(min(4**attempts, 3600))
    base = min(5 * 2 ** (attempts - 1), 900)
    return base + random.uniform(0, base / 4)


def deliver(message_id: int) -> Outcome:
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .filter(pk=message_id, direction=Message.Direction.OUT)
            .select_related("conversation")
            .first()
        )
        # Anything but pending means another delivery owns it, it was sent, or it failed: a
        # duplicate or late task must not send again.
        if message is None or message.status != Message.Status.PENDING:
            return Outcome("skipped")
        inbox = Inbox.objects.get(pk=message.conversation.inbox_id)
        if inbox.sending_paused_reason or not inbox.is_active:
            _fail(
                message,
                code=None,
                title=gettext("Not sent: sending from this inbox is paused."),
                details=inbox.sending_paused_reason,
            )
            return Outcome("failed")
        message.status = Message.Status.SENDING
        message.send_attempts += 1
        message.send_started = timezone.now()
        message.save(update_fields=["status", "send_attempts", "send_started", "updated"])
    # Committed: from here on a crash leaves the row in ``sending`` for reconcile_unconfirmed.
    client = GraphClient(inbox)
    try:
        needs_upload = bool(message.media) and not message.media_id and message.type in MEDIA_TYPES
        if needs_upload and not _upload(client, message):
            return Outcome("skipped")
        wamid = client.send_message(message.payload)
    except GraphError as error:
        return _handle_error(message, inbox, error)
    with transaction.atomic():
        locked = Message.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=message.pk)
        if locked.wamid and locked.wamid != wamid:
            logger.error("message %s: linked to %s by a webhook but Meta answered %s", locked.pk, locked.wamid, wamid)
        services.attach_wamid(locked, wamid)
        # Leftovers from a retried attempt go; a status webhook's failure (if any) is newer.
        if (locked.error_code is not None or locked.error_title) and locked.status != Message.Status.FAILED:
            locked.error_code, locked.error_title, locked.error_details = None, "", ""
            locked.save(update_fields=["error_code", "error_title", "error_details", "updated"])
        if locked.type == "reaction":
            _apply_reaction(locked)
    return Outcome("sent")


def _upload(client: GraphClient, message: Message) -> bool:
    """Upload the stored file to Meta and put its id into the payload. Repeating an upload is
    harmless (an unused media id expires), so upload failures never leave the row uncertain."""
    with message.media.open("rb") as fh:
        try:
            filename = message.media_filename or os.path.basename(message.media.name)
            media_id = client.upload_media(fh, mime_type=message.media_mime, filename=filename)
        except GraphError as error:
            if error.uncertain:
                error.kind = "retryable"
            raise
    payload = dict(message.payload)
    payload[message.type] = {**payload.get(message.type, {}), "id": media_id}
    # send_started restarts: a long upload must not make the sweep think the send was lost.
    updated = Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        media_id=media_id,
        payload=payload,
        media_status=Message.MediaStatus.UPLOADED,
        send_started=timezone.now(),
        updated=timezone.now(),
    )
    message.media_id, message.payload, message.media_status = media_id, payload, Message.MediaStatus.UPLOADED
    return bool(updated)


def _handle_error(message: Message, inbox: Inbox, error: GraphError) -> Outcome:
    if error.uncertain:
        # Meta may have accepted it: wait for the status webhook (callback data) or the sweep.
        logger.warning("message %s: outcome unknown (%s); waiting for a status webhook", message.pk, error)
        return Outcome("uncertain")
    with transaction.atomic():
        locked = Message.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=message.pk)
        if locked.status != Message.Status.SENDING:
            return Outcome("skipped")
        if error.retryable:
            if locked.send_attempts >= settings.WHATSAPP_SEND_MAX_ATTEMPTS:
                _fail(locked, **_error_fields(error))
                return Outcome("failed")
            locked.status = Message.Status.PENDING
            services.set_error(locked, error.as_error_dict)
            locked.save(update_fields=["status", "error_code", "error_title", "error_details", "updated"])
            return Outcome("retry", retry_in=retry_delay(locked.send_attempts, error.code))
        if error.needs_template:
            _fail(locked, code=error.code, title=str(TEMPLATE_NEEDED), details=error.details or error.title)
            return Outcome("failed")
        if error.alert:
            _alert(inbox, error)
        _fail(locked, **_error_fields(error))
        return Outcome("failed")


def _error_fields(error: GraphError) -> dict[str, Any]:
    fields = error.as_error_dict
    return {"code": fields["code"], "title": fields["title"], "details": fields["error_data"]["details"]}


def _alert(inbox: Inbox, error: GraphError) -> None:
    services.raise_alert(inbox, error.alert_kind, error.title or error.message, code=error.code, details=error.details)
    if error.pause:
        services.pause_sending(
            inbox,
            gettext("WhatsApp error %(code)s: %(title)s") % {"code": error.code, "title": error.title or error.message},
        )


def _fail(message: Message, *, code: int | None, title: str, details: str) -> None:
    message.status = Message.Status.FAILED
    message.failed_at = timezone.now()
    message.error_code = code
    message.error_title = str(title)[:500]
    message.error_details = details or ""
    message.save(update_fields=["status", "failed_at", "error_code", "error_title", "error_details", "updated"])
    events.message_updated(message, "status")


def _apply_reaction(message: Message) -> None:
    content = message.content or {}
    target = (
        Message.objects.select_for_update()
        .filter(wamid=content.get("message_id"), conversation_id=message.conversation_id)
        .first()
    )
    if target is None:
        return
    reactions = dict(target.reactions or {})
    if content.get("emoji"):
        reactions["business"] = content["emoji"]
    else:
        reactions.pop("business", None)
    target.reactions = reactions
    target.save(update_fields=["reactions", "updated"])
    events.message_updated(target, "reaction")


# --- Sweeps ---------------------------------------------------------------------------------------------


def reconcile_unconfirmed(now: datetime | None = None, *, limit: int = 500) -> list[int]:
    """Rows left ``sending`` without a wamid past the confirmation window: Meta never echoed
    them in a status webhook, so they most likely were not sent. Put them back to pending
    (or fail them when out of attempts). Returns the ids put back, already queued."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WHATSAPP_SEND_CONFIRM_SECONDS)
    candidates = list(
        Message.objects.filter(
            direction=Message.Direction.OUT,
            status=Message.Status.SENDING,
            wamid__isnull=True,
            send_started__lt=cutoff,
        )
        .order_by("send_started")
        .values_list("pk", flat=True)[:limit]
    )
    requeued = []
    for pk in candidates:
        with transaction.atomic():
            # Re-checked under the lock: a status webhook may have linked it since.
            message = (
                Message.objects.select_for_update(of=("self",))
                .select_related("conversation")
                .filter(pk=pk, status=Message.Status.SENDING, wamid__isnull=True, send_started__lt=cutoff)
                .first()
            )
            if message is None:
                continue
            if message.send_attempts >= settings.WHATSAPP_SEND_MAX_ATTEMPTS:
                _fail(
                    message,
                    code=None,
                    title=gettext("Not confirmed by WhatsApp after %(n)s attempts.") % {"n": message.send_attempts},
                    details=message.error_details,
                )
                continue
            message.status = Message.Status.PENDING
            message.save(update_fields=["status", "updated"])
            _enqueue_send(message.pk)
            requeued.append(message.pk)
    if requeued:
        logger.info("sending sweep: %s unconfirmed messages queued again", len(requeued))
    return requeued


def due_pending(now: datetime | None = None, *, min_age: float = 60.0, limit: int = 500) -> list[int]:
    """Pending rows whose task seems lost (broker down, worker died): older than ``min_age``
    and past their retry backoff."""
    now = now or timezone.now()
    rows = (
        Message.objects.filter(
            direction=Message.Direction.OUT,
            status=Message.Status.PENDING,
            updated__lte=now - timedelta(seconds=min_age),
        )
        .order_by("updated")
        .values_list("pk", "updated", "send_attempts", "error_code")[: limit * 2]
    )
    due = []
    for pk, updated, attempts, code in rows:
        wait = retry_delay(attempts, code) if attempts else 0.0
        if updated + timedelta(seconds=wait + min_age) <= now:
            due.append(pk)
    return due[:limit]


def _file_size(file: IO[bytes]) -> int:
    size = getattr(file, "size", None)
    if isinstance(size, int):
        return size
    position = file.tell()
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(position)
    return size


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size // (1024 * 1024)} MB"
    return f"{size // 1024} KB"
