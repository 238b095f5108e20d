"""Getting stored outbound messages to WhatsApp: the send task's work, and its sweeps.

``deliver`` moves a row pending -> sending and commits *before* calling Meta, so two workers
never send the same row, and handles the answer:

- accepted: store the wamid (``services.attach_wamid`` also applies statuses that raced ahead);
- definitely not accepted and worth retrying: back to pending, the task retries with backoff;
- rejected for good: failed, with Meta's reason for the attendant (and an admin alert, and the
  inbox paused, when the token or the account is the problem);
- answer lost (read timeout...): the row stays ``sending``. Meta echoes our
  ``biz_opaque_callback_data`` in the status webhook and ``services.apply_status`` links the row
  then, however late. If nothing arrives within ``WHATSAPP_SEND_CONFIRM_SECONDS``,
  ``reconcile_unconfirmed`` marks it ``unconfirmed`` and a person decides
  (``outbound.send_again``). It is never sent again automatically: the status webhook may still
  be waiting in the webhook backlog, and the customer would get the message twice.

Each attempt has a number (``send_attempts``); a worker calls Meta only while the row is still
``sending`` with *its* number (a compare-and-set), so a worker whose upload outlived the sweep,
or that a "send again" overtook, never sends a second copy.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from conversations import events, services
from conversations.models import MEDIA_TYPES, Inbox, Message
from conversations.querycache import CompiledQuery
from conversations.whatsapp.graph import PAIR_RATE_LIMIT, GraphClient, GraphError

logger = logging.getLogger(__name__)

TEMPLATE_NEEDED = _("Not sent: the 24-hour window is closed, so WhatsApp requires an approved template message.")


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
    return _send_claimed(message, inbox)


# The read before a claimed row's delivery (a bot's reply), compiled once per process.
_CLAIMED = CompiledQuery(
    lambda pk: (
        Message.objects.filter(pk=pk, direction=Message.Direction.OUT, status=Message.Status.SENDING)
        .select_related("conversation__inbox")
        .order_by()
    ),
    -987654321,
)


def deliver_claimed(message_id: int) -> Outcome:
    """Deliver a row whose first attempt its creator claimed in the transaction that stored it
    (``outbound.delivered_here``: ``sending``, attempt 1, the inbox checked under the same
    lock). As after ``deliver``'s claim, a crash from here on leaves it for
    reconcile_unconfirmed, never for a second automatic send."""
    message = _CLAIMED.one(message_id)
    if message is None or message.send_attempts != 1 or message.wamid:
        return Outcome("skipped")
    return _send_claimed(message, message.conversation.inbox)


def _send_claimed(message: Message, inbox: Inbox) -> Outcome:
    attempt = message.send_attempts
    client = GraphClient(inbox)
    try:
        needs_upload = bool(message.media) and not message.media_id and message.type in MEDIA_TYPES
        if needs_upload and not _upload(client, message, attempt):
            return Outcome("skipped")
        wamid = client.send_message(message.payload)
    except GraphError as error:
        return _handle_error(message, inbox, error, attempt)
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


def _upload(client: GraphClient, message: Message, attempt: int) -> bool:
    """Upload the stored file to Meta and put its id into the payload. Repeating an upload is
    harmless (an unused media id expires), so upload failures never leave the row uncertain.

    Returns whether this attempt still owns the row and may send. An upload can take longer
    than the confirmation window: meanwhile the sweep may have marked the row unconfirmed and a
    person may have sent it again (a new attempt, sent by another worker)."""
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
    # The claim, a compare-and-set on the attempt number: only the worker of the row's current
    # attempt goes on to call Meta. An ``unconfirmed`` row of this same attempt is taken back:
    # its message has surely not been sent (that happens only after this upload), and a "send
    # again" would have made a new attempt number. send_started restarts so the sweep measures
    # the confirmation window from the send itself, not from the start of a long upload.
    with transaction.atomic():
        locked = (
            Message.objects.select_for_update(of=("self",))
            .select_related("conversation")
            .filter(
                pk=message.pk, send_attempts=attempt, status__in=[Message.Status.SENDING, Message.Status.UNCONFIRMED]
            )
            .first()
        )
        if locked is None:
            logger.info("message %s: attempt %s overtaken during its upload; not sending", message.pk, attempt)
            return False
        taken_back = locked.status != Message.Status.SENDING
        locked.status = Message.Status.SENDING
        locked.media_id, locked.payload, locked.media_status = media_id, payload, Message.MediaStatus.UPLOADED
        locked.send_started = timezone.now()
        locked.save(update_fields=["status", "media_id", "payload", "media_status", "send_started", "updated"])
        if taken_back:
            events.message_updated(locked, "status")
    message.media_id, message.payload, message.media_status = media_id, payload, Message.MediaStatus.UPLOADED
    return True


def _handle_error(message: Message, inbox: Inbox, error: GraphError, attempt: int) -> Outcome:
    if error.uncertain:
        # Meta may have accepted it: wait for the status webhook (callback data); past the
        # confirmation window the sweep marks it unconfirmed for a person to decide.
        logger.warning("message %s: outcome unknown (%s); waiting for a status webhook", message.pk, error)
        return Outcome("uncertain")
    with transaction.atomic():
        locked = Message.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=message.pk)
        # Another attempt owns the row now (or a webhook settled it): this answer is stale. An
        # ``unconfirmed`` row of this attempt (the sweep ran while a slow answer was on its way)
        # is settled by it: a definite error means Meta did not take the message.
        mine = locked.status in (Message.Status.SENDING, Message.Status.UNCONFIRMED) and locked.send_attempts == attempt
        if not mine:
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
    """Rows left ``sending`` without a wamid past the confirmation window: Meta's answer was
    lost (or the worker died) and no status webhook has linked them yet. They may well have
    reached the customer, and their status webhook may still be waiting in the backlog, so
    they are never sent again from here: they become ``unconfirmed``, shown to people, who
    decide (``outbound.send_again``). A late status webhook still links them and moves them on.
    Returns the ids marked."""
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
    marked = []
    for pk in candidates:
        with transaction.atomic():
            # Re-checked under the lock: a status webhook may have linked it since, or a worker
            # may have just claimed it (send_started restarts then).
            message = (
                Message.objects.select_for_update(of=("self",))
                .select_related("conversation")
                .filter(pk=pk, status=Message.Status.SENDING, wamid__isnull=True, send_started__lt=cutoff)
                .first()
            )
            if message is None:
                continue
            message.status = Message.Status.UNCONFIRMED
            message.save(update_fields=["status", "updated"])
            events.message_updated(message, "status")
            marked.append(message.pk)
    if marked:
        logger.warning("sending sweep: %s messages not confirmed by WhatsApp; a person decides", len(marked))
    return marked


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
