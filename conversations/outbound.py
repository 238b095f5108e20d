"""Sending to WhatsApp: every outbound message is written here first, then delivered by a task.

``send_*`` check that the inbox may send and that the 24-hour window is open (templates are the
exception), validate, store the exact Graph body on a pending ``Message`` and queue
the send task after commit. Nothing is stored and Meta is not called when a check fails.

Getting a stored row to Meta (the send task, retries, lost answers) is in
``conversations.delivery``.
"""

from __future__ import annotations

import contextvars
import logging
import mimetypes
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from conversations import delivery, events, jobs, signals
from conversations.media import ALLOWED_MIME_TYPES, MEDIA_LIMITS, base_mime, extension_for, file_kept_if_committed
from conversations.models import MEDIA_TYPES, Conversation, Inbox, Message
from conversations.querycache import CompiledQuery
from conversations.whatsapp.graph import GraphClient

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


def check_can_send(conversation: Conversation, *, template: bool = False, inbox: Inbox | None = None) -> None:
    """Raise SendRefused unless this conversation's inbox may send this kind of message now.
    ``inbox``: the conversation's inbox, read fresh by the caller with the conversation."""
    if inbox is None:
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
    message = Message(
        direction=Message.Direction.OUT,
        sender_kind=sender_kind,
        sender=sender,
        type=type,
        text=text,
        caption=caption,
        content=content or body,
        status=Message.Status.PENDING,
        media_mime=media_mime,
        media_filename=media_filename,
    )
    block: AbstractContextManager[Any]
    if media_file is None:
        # Inside the caller's transaction (a bot's turn) the lock below lasts until its commit and
        # a refusal raises before anything is written: no savepoint of its own (two round trips).
        block = nullcontext() if transaction.get_connection().in_atomic_block else transaction.atomic()
    else:
        # Checked (fresh) before writing the file too, so a refused send costs no disk write;
        # the check under the lock below still decides.
        check_can_send(Conversation.objects.get(pk=conversation.pk), template=template)
        # The stored name is ours (no customer or attendant text in paths); the original
        # name is kept in media_filename for display and downloads.
        media_name = f"out-{message.uuid}{media_ext}"
        django_file = media_file if isinstance(media_file, File) else File(media_file, name=media_name)
        # The file is written before the row's transaction and removed if it rolls back.
        block = file_kept_if_committed(
            message.media,
            media_name,
            django_file,
            recorded=lambda: Message.objects.filter(uuid=message.uuid).exists(),
        )
    with block:
        # Locked and fresh, with its customer and inbox in the same statement: the window is
        # computed from the stored last_inbound, two sends to one conversation update
        # last_message one after the other, and a pause of the inbox a moment ago is seen.
        locked = _LOCKED_FOR_SEND.one(conversation.pk)
        if locked is None:
            raise Conversation.DoesNotExist(f"conversation {conversation.pk} does not exist")
        check_can_send(locked, template=template, inbox=locked.inbox)
        now = timezone.now()
        message.conversation = locked
        message.wa_timestamp = now
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
        if message.media:
            message.media_size = message.media.size
        if _delivered_here.get() is not None:
            # Delivered by this process right after commit: its first attempt is claimed in
            # this very transaction (the checks above ran under the same lock).
            message.status = Message.Status.SENDING
            message.send_attempts = 1
            message.send_started = now
        message.save()
        if locked.last_message is None or now > locked.last_message:
            locked.last_message = now
            locked.save(update_fields=["last_message", "updated"])
        conversation.last_message = locked.last_message
        events.message_created(message)
        enqueue_send(message.pk)
        signals.send_on_commit(
            signals.outbound_stored,
            message_id=message.pk,
            conversation_id=locked.pk,
            inbox_id=locked.inbox_id,
            sender_kind=sender_kind,
            sender_id=getattr(sender, "pk", None),
        )
    return message


# Every send's locking read, compiled once per process (conversations/querycache.py).
_LOCKED_FOR_SEND = CompiledQuery(
    lambda pk: (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer", "inbox")
        .filter(pk=pk)
        .order_by()
    ),
    -987654321,
)


def enqueue_send(message_id: int) -> None:
    """Queue the send task once the row is committed (inside ``delivered_here``: deliver it at
    the end of that block instead)."""
    here = _delivered_here.get()
    if here is not None:
        transaction.on_commit(lambda: here.append(message_id))
    else:
        jobs.enqueue_on_commit(jobs.SEND_MESSAGE, message_id)


# The messages committed inside the innermost ``delivered_here`` block, or None outside one.
_delivered_here: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("delivered_here", default=None)


@contextmanager
def delivered_here() -> Iterator[None]:
    """Messages stored (and committed) inside this block are delivered by this process when it
    ends, instead of by the sending worker: for a worker whose answer should not wait for a
    queue hop (the bot's reply). Each row's first attempt is claimed in the transaction that
    stores it (``sending``, attempt 1), then it is the send task's own delivery
    (``delivery.deliver_claimed``): a row is sent at most once; one that needs another try is
    queued with the task's backoff; a process that dies before Meta answers leaves the row to
    reconcile_unconfirmed, as when a sending worker dies after its claim (not confirmed, sent
    again only by a person). Rows whose transaction rolled back (the "try the bot" page) are
    never delivered."""
    committed: list[int] = []
    token = _delivered_here.set(committed)
    try:
        yield
    finally:
        _delivered_here.reset(token)
        for message_id in committed:
            deliver_now(message_id)


def deliver_now(message_id: int) -> None:
    """Deliver one committed, claimed row in this process; never raises. What the send task
    would retry goes to the send task, with its delay. A failure of ours leaves the claimed row
    to reconcile_unconfirmed (it may have reached Meta)."""
    try:
        outcome = delivery.deliver_claimed(message_id)
    except Exception:
        logger.exception("message %s: delivery here failed; left to the unconfirmed sweep", message_id)
        return
    if outcome.retry_in is not None:
        jobs.enqueue(jobs.SEND_MESSAGE, message_id, countdown=outcome.retry_in)


NOT_RESENDABLE = _(
    "Only a message that WhatsApp did not confirm, or that failed before WhatsApp accepted it, can be sent again."
)


def can_send_again(message: Message) -> bool:
    """Whether ``send_again`` would accept this message (the console shows the button by it)."""
    if message.direction != Message.Direction.OUT:
        return False
    if message.status == Message.Status.UNCONFIRMED:
        return True
    # A failure with a wamid happened after Meta accepted the message (a failed status
    # webhook): that copy exists at Meta and cannot be sent again under the same row.
    return message.status == Message.Status.FAILED and not message.wamid


def send_again(message: Message, actor: AbstractBaseUser | None = None) -> Message:
    """A person decided to send again a message WhatsApp never confirmed (it may or may not
    have reached the customer) or one that failed before Meta accepted it.

    Checks the inbox and the 24-hour window like any send, then makes the row pending for a
    new attempt and queues it. The new attempt gets a new number, so a worker still busy with
    the old one (a slow upload) finds the row is no longer its own and never sends."""
    with transaction.atomic():
        locked = Message.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=message.pk)
        if not can_send_again(locked):
            raise SendRefused(NOT_RESENDABLE, reason="not_resendable")
        check_can_send(locked.conversation, template=locked.type == "template")
        previous = locked.status
        locked.status = Message.Status.PENDING
        locked.failed_at = None
        locked.save(update_fields=["status", "failed_at", "updated"])
        events.message_updated(locked, "status")
        enqueue_send(locked.pk)
    logger.info(
        "message %s (%s) sent again by user %s", locked.pk, previous, getattr(actor, "pk", None) if actor else None
    )
    message.status, message.failed_at = locked.status, locked.failed_at
    return locked


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
    task, kept in our storage) or from a public https link.

    With a file, call it outside any transaction: the file is written before the row and
    removed unless the row commits, which only the outermost transaction knows (a
    RuntimeError otherwise; see ``media.file_kept_if_committed``)."""
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


def _require_received(message: Message) -> None:
    _require(
        message.direction == Message.Direction.IN and bool(message.wamid),
        _("Only received messages can be marked as read."),
    )


def show_typing(message: Message, inbox: Inbox) -> None:
    """WhatsApp's typing indicator on the customer's ``message`` (it comes with the read receipt,
    so an inbox that sends none shows no typing either), for a worker about to think a while
    (the bot). Sent from this process as soon as the current transaction commits, on a
    background thread, instead of waiting its turn in the sending queue behind other sends:
    it only helps while the answer is still coming. Best effort: a failure is logged and never
    retried, the answer follows anyway. ``inbox`` is the conversation's, read fresh by the
    caller (``message.conversation`` must be set). Where tasks run eagerly (the embedded mode,
    the tests) it is sent inline after commit, like the task it replaces."""
    _require_received(message)
    if not inbox.read_receipts or not inbox.is_active or inbox.sending_paused_reason:
        return
    if not message.conversation.is_window_open():
        return
    message_id, wamid = message.pk, message.wamid

    def send() -> None:
        try:
            GraphClient(inbox, timeout=min(TYPING_TIMEOUT_SECONDS, settings.WHATSAPP_HTTP_TIMEOUT)).mark_read(
                wamid, typing=True
            )
        except Exception as exc:
            logger.info("no typing indicator for message %s: %s", message_id, exc)

    if jobs.eager():
        transaction.on_commit(send)
    else:
        transaction.on_commit(lambda: _typing_threads().submit(send))


# A typing indicator later than this is no use (and a worker stopping waits for it at most this long).
TYPING_TIMEOUT_SECONDS = 5.0
# Per process: a forked worker does not inherit its parent's threads.
_typing_pool: tuple[int, ThreadPoolExecutor] | None = None
_typing_lock = threading.Lock()


def _typing_threads() -> ThreadPoolExecutor:
    global _typing_pool
    with _typing_lock:
        if _typing_pool is None or _typing_pool[0] != os.getpid():
            _typing_pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="typing"))
        return _typing_pool[1]


def mark_read(message: Message, *, typing: bool = False) -> None:
    """Tell the customer we read their message (and, optionally, that we are typing)."""
    _require_received(message)
    check_can_send(message.conversation)
    jobs.enqueue_on_commit(jobs.MARK_READ, message.pk, typing)


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
