"""Writes for inboxes, customers, conversations and messages. Intake, sending, the admin and
the tasks all come through here."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import events, jobs, signals
from conversations.models import Alert, Conversation, Customer, Inbox, Message, OrphanStatus, alert_dedupe_key
from conversations.whatsapp.parsing import Identity, NewMessage, StatusUpdate

logger = logging.getLogger(__name__)

# Delivery only moves forward. ``failed`` sits below ``delivered``: Meta can report a failure
# and later a delivery for multi-device users, and a delivered message stays delivered.
STATUS_RANK = {
    Message.Status.RECEIVED: -1,
    Message.Status.PENDING: 0,
    Message.Status.SENDING: 0,
    # Same rank as sending: a status webhook that arrives after the sweep gave up waiting still
    # moves the row forward (and links its wamid by callback data).
    Message.Status.UNCONFIRMED: 0,
    Message.Status.SENT: 1,
    Message.Status.FAILED: 2,
    Message.Status.DELIVERED: 3,
    Message.Status.READ: 4,
    Message.Status.PLAYED: 5,
}
STATUS_TIME_FIELD = {
    Message.Status.SENT: "sent_at",
    Message.Status.DELIVERED: "delivered_at",
    Message.Status.READ: "read_at",
    Message.Status.PLAYED: "played_at",
    Message.Status.FAILED: "failed_at",
}


# --- Inboxes ------------------------------------------------------------------------------


def ensure_default_inbox() -> Inbox | None:
    """Create or refresh the inbox configured by the WHATSAPP_* settings."""
    phone_number_id = settings.WHATSAPP_PHONE_NUMBER_ID
    if not phone_number_id:
        return None
    values = {
        "display_number": settings.WHATSAPP_DISPLAY_NUMBER,
        "waba_id": settings.WHATSAPP_WABA_ID,
        "access_token": settings.WHATSAPP_ACCESS_TOKEN,
        "app_secret": settings.WHATSAPP_APP_SECRET,
        "verify_token": settings.WHATSAPP_VERIFY_TOKEN,
    }
    inbox, created = Inbox.objects.get_or_create(
        phone_number_id=phone_number_id, defaults={"name": settings.WHATSAPP_INBOX_NAME, **values}
    )
    if not created:
        # The environment is the source of truth for the default inbox's credentials, but an
        # empty variable never wipes a value an admin typed in.
        changed = [field for field, value in values.items() if value and getattr(inbox, field) != value]
        for field in changed:
            setattr(inbox, field, values[field])
        if changed:
            inbox.save(update_fields=[*changed, "updated"])
    return inbox


def raise_alert(inbox: Inbox | None, kind: str, title: str, *, code: int | None = None, details: str = "") -> Alert:
    """Record an admin-visible alert, once while it is open.

    Two workers raising the same alert at once both pass any "is it open already?" check, so
    the partial unique constraint on ``dedupe_key`` decides: the loser's insert fails in its
    savepoint and it returns the winner's row. The lookup first only spares an insert (and a
    server-side error) in the common case of an alert that is already open."""
    title = title[:300]
    key = alert_dedupe_key(inbox.pk if inbox else None, kind, code, title)
    # A few rounds: the open alert we collided with may be resolved before we can read it.
    for _round in range(3):
        existing = Alert.objects.filter(dedupe_key=key, resolved__isnull=True).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    inbox=inbox, kind=kind, code=code, title=title, details=details, dedupe_key=key
                )
        except IntegrityError:
            continue
        logger.warning("alert for inbox %s: [%s] %s %s", inbox.pk if inbox else None, kind, code, title)
        return alert
    raise RuntimeError(f"could not raise alert {key}: it keeps being resolved and raised")


def pause_sending(inbox: Inbox, reason: str) -> None:
    Inbox.objects.filter(pk=inbox.pk).update(sending_paused_reason=reason, updated=timezone.now())
    inbox.sending_paused_reason = reason
    logger.warning("inbox %s: sending paused: %s", inbox.pk, reason)


def resume_sending(inbox: Inbox) -> bool:
    """An admin fixed the token or the account: allow sends again. Returns whether it was paused."""
    changed = (
        Inbox.objects.filter(pk=inbox.pk)
        .exclude(sending_paused_reason="")
        .update(sending_paused_reason="", updated=timezone.now())
    )
    inbox.sending_paused_reason = ""
    if changed:
        logger.info("inbox %s: sending resumed", inbox.pk)
    return bool(changed)


def resolve_alert(alert: Alert) -> bool:
    """Mark an open alert resolved; returns False when it already was."""
    now = timezone.now()
    changed = Alert.objects.filter(pk=alert.pk, resolved__isnull=True).update(resolved=now)
    if changed:
        alert.resolved = now
    return bool(changed)


# --- Customers ----------------------------------------------------------------------------


def e164(wa_id: str) -> str:
    """WhatsApp ids are the number with country code and no '+'."""
    if not wa_id or not wa_id.isdigit():
        return ""
    try:
        number = phonenumbers.parse("+" + wa_id, None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _find_customer(identity: Identity) -> Customer | None:
    if identity.wa_id:
        customer = Customer.objects.filter(wa_id=identity.wa_id).first()
        if customer:
            return customer
    if identity.user_id:
        return Customer.objects.filter(user_id=identity.user_id).first()
    return None


def upsert_customer(identity: Identity) -> Customer:
    """Find the customer by wa_id, else by business-scoped user id; create it if new; keep the
    profile up to date. Safe when two workers see the same new customer at once."""
    customer = _find_customer(identity)
    if customer is None:
        try:
            with transaction.atomic():
                return Customer.objects.create(
                    wa_id=identity.wa_id,
                    user_id=identity.user_id,
                    parent_user_id=identity.parent_user_id,
                    name=identity.name[:256],
                    username=identity.username[:128],
                    phone=e164(identity.wa_id),
                )
        except IntegrityError:
            customer = _find_customer(identity)
            if customer is None:
                raise
    updates: dict[str, str] = {}
    if identity.name and customer.name != identity.name[:256]:
        updates["name"] = identity.name[:256]
    if identity.username and customer.username != identity.username[:128]:
        updates["username"] = identity.username[:128]
    if identity.parent_user_id and customer.parent_user_id != identity.parent_user_id:
        updates["parent_user_id"] = identity.parent_user_id
    if identity.wa_id and not customer.wa_id:
        updates["wa_id"] = identity.wa_id
        updates["phone"] = e164(identity.wa_id)
    if identity.user_id and customer.user_id != identity.user_id:
        updates["user_id"] = identity.user_id
    if updates:
        _update_customer(customer, updates)
    return customer


def _update_customer(customer: Customer, updates: dict[str, str]) -> None:
    for field, value in updates.items():
        setattr(customer, field, value)
    try:
        with transaction.atomic():
            customer.save(update_fields=[*updates, "updated"])
    except IntegrityError:
        # Another customer row already holds that wa_id/user_id (a number that moved between
        # people). Keep the profile fields and leave the identifiers alone.
        customer.refresh_from_db()
        safe = {k: v for k, v in updates.items() if k not in ("wa_id", "user_id", "phone")}
        for field, value in safe.items():
            setattr(customer, field, value)
        if safe:
            customer.save(update_fields=[*safe, "updated"])
        logger.warning("customer %s: identifier update conflicts with another customer", customer.pk)


def change_customer_number(customer: Customer, new_wa_id: str) -> bool:
    """A ``user_changed_number`` system message: the same person now writes from another number."""
    if not new_wa_id or customer.wa_id == new_wa_id:
        return False
    if Customer.objects.filter(wa_id=new_wa_id).exclude(pk=customer.pk).exists():
        return False
    _update_customer(customer, {"wa_id": new_wa_id, "phone": e164(new_wa_id)})
    return customer.wa_id == new_wa_id


def change_customer_user_id(customer: Customer, new_user_id: str) -> bool:
    if not new_user_id or customer.user_id == new_user_id:
        return False
    if Customer.objects.filter(user_id=new_user_id).exclude(pk=customer.pk).exists():
        return False
    _update_customer(customer, {"user_id": new_user_id})
    return customer.user_id == new_user_id


# --- Conversations ------------------------------------------------------------------------


def open_conversation(inbox: Inbox, customer: Customer, *, referral: dict | None = None) -> tuple[Conversation, bool]:
    """The customer's open conversation in this inbox, opening one if there is none. The row
    comes back locked so concurrent intake for the same conversation is serialised."""
    conversation = Conversation.objects.select_for_update().open().filter(inbox=inbox, customer=customer).first()
    if conversation:
        return conversation, False
    referral = referral or {}
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                inbox=inbox,
                customer=customer,
                status=Conversation.Status.BOT,
                referral=referral,
                ctwa_clid=str(referral.get("ctwa_clid") or "")[:512],
                referral_source=str(referral.get("source_url") or referral.get("source_id") or "")[:1024],
                referral_headline=str(referral.get("headline") or "")[:1024],
            )
    except IntegrityError:
        # The unique open-conversation constraint: another worker opened it first.
        conversation = Conversation.objects.select_for_update().open().get(inbox=inbox, customer=customer)
        return conversation, False
    events.conversation_opened(conversation)
    signals.send_on_commit(
        signals.conversation_opened, conversation_id=conversation.pk, inbox_id=inbox.pk, customer_id=customer.pk
    )
    return conversation, True


def _touch_conversation(conversation: Conversation, when: datetime, *, inbound: bool) -> None:
    fields = []
    if conversation.last_message is None or when > conversation.last_message:
        conversation.last_message = when
        fields.append("last_message")
    if inbound and (conversation.last_inbound is None or when > conversation.last_inbound):
        conversation.last_inbound = when
        fields.append("last_inbound")
    if fields:
        conversation.save(update_fields=[*fields, "updated"])


# --- Messages -----------------------------------------------------------------------------


def record_message(
    inbox: Inbox, identity: Identity, new: NewMessage, *, event_id: int | None = None
) -> tuple[Message, bool]:
    """Store one inbound or echoed message exactly once (unique wamid), opening the
    conversation if needed, and apply what it means to the message it refers to.

    Must run inside a transaction. Returns (message, created)."""
    # exists() compiles and returns far less than fetching a 45-column row, and almost every
    # message is new.
    if Message.objects.filter(wamid=new.wamid).exists():
        return Message.objects.get(wamid=new.wamid), False
    customer = upsert_customer(identity)
    conversation, _ = open_conversation(inbox, customer, referral=new.referral)
    defaults: dict[str, Any] = {
        "conversation": conversation,
        "direction": new.direction,
        "sender_kind": new.sender_kind,
        "type": new.type[:40],
        "text": new.text,
        "content": new.content or {},
        "caption": new.caption,
        "media_id": new.media_id[:255],
        "media_mime": new.media_mime[:255],
        "media_sha256": new.media_sha256[:128],
        "media_filename": new.media_filename[:500],
        "media_status": Message.MediaStatus.PENDING if new.media_id else Message.MediaStatus.NONE,
        "context_wamid": new.context_wamid[:255],
        "forwarded": new.forwarded,
        "frequently_forwarded": new.frequently_forwarded,
        "referral": new.referral or {},
        "wa_timestamp": new.timestamp,
        "error_code": new.error_code,
        "error_title": new.error_title[:500],
        "error_details": new.error_details,
        "raw": new.raw or {},
        "event_id": event_id,
    }
    if new.direction == Message.Direction.OUT:
        defaults["status"] = Message.Status.SENT
        defaults["sent_at"] = new.timestamp
    if new.context_wamid:
        defaults["reply_to"] = Message.objects.filter(wamid=new.context_wamid, conversation=conversation).first()
    try:
        with transaction.atomic():
            message = Message.objects.create(wamid=new.wamid, **defaults)
    except IntegrityError:
        # Same wamid stored by a concurrent worker between our check and insert.
        return Message.objects.get(wamid=new.wamid), False
    _touch_conversation(conversation, new.timestamp, inbound=new.direction == Message.Direction.IN)
    _apply_to_target(message, customer)
    events.message_created(message)
    announce = {
        (Message.Direction.IN, Message.SenderKind.CUSTOMER): signals.message_received,
        (Message.Direction.OUT, Message.SenderKind.PHONE_APP): signals.echo_received,
    }.get((message.direction, message.sender_kind))
    if announce is not None:
        signals.send_on_commit(
            announce, message_id=message.pk, conversation_id=conversation.pk, inbox_id=conversation.inbox_id
        )
    if new.media_id:
        jobs.enqueue_on_commit(jobs.DOWNLOAD_MEDIA, message.pk)
    return message, True


def _apply_to_target(message: Message, customer: Customer) -> None:
    """Reactions, edits and revokes change the message they point at."""
    content = message.content or {}
    side = "business" if message.direction == Message.Direction.OUT else "customer"
    if message.type == "reaction":
        target = _target(message, content.get("message_id"))
        if target is None:
            return
        emoji = content.get("emoji") or ""
        reactions = dict(target.reactions or {})
        if emoji:
            reactions[side] = emoji
        else:
            reactions.pop(side, None)
        target.reactions = reactions
        target.save(update_fields=["reactions", "updated"])
        events.message_updated(target, "reaction")
    elif message.type == "edit":
        target = _target(message, content.get("original_message_id"))
        if target is None:
            return
        history = list(target.edit_history or [])
        history.append(
            {
                "text": target.text,
                "caption": target.caption,
                "replaced_at": message.wa_timestamp.isoformat(),
                "by_wamid": message.wamid,
            }
        )
        target.edit_history = history
        target.text = message.text
        if message.caption or target.caption:
            target.caption = message.caption
        target.edited = message.wa_timestamp
        target.save(update_fields=["edit_history", "text", "caption", "edited", "updated"])
        events.message_updated(target, "edit")
    elif message.type == "revoke":
        target = _target(message, content.get("original_message_id"))
        if target is None:
            return
        target.revoked = message.wa_timestamp
        target.save(update_fields=["revoked", "updated"])
        events.message_updated(target, "revoke")
    elif message.type == "system":
        kind = content.get("type")
        if kind == "user_changed_number":
            change_customer_number(customer, str(content.get("wa_id") or ""))
        elif kind == "user_changed_user_id":
            change_customer_user_id(customer, str(content.get("user_id") or ""))


def _target(message: Message, wamid: Any) -> Message | None:
    if not wamid or not isinstance(wamid, str):
        return None
    # Only within the same conversation: a customer cannot touch another chat's messages.
    return (
        Message.objects.select_for_update()
        .filter(wamid=wamid, conversation_id=message.conversation_id)
        .exclude(pk=message.pk)
        .first()
    )


# --- Delivery statuses ----------------------------------------------------------------------


def apply_status(update: StatusUpdate, *, event_id: int | None = None) -> Message | None:
    """Move a message's delivery status forward; keep unknown ones for later. Must run in a
    transaction. Returns the message, or None when it is not ours (yet)."""
    message = Message.objects.select_for_update().filter(wamid=update.wamid).first()
    if message is None and update.callback_data.startswith("atende:"):
        # The send's answer was lost (timeout) but Meta echoes our callback data: this is how
        # the row learns its wamid without sending twice.
        message = _message_by_callback(update.callback_data)
        if message is not None and not message.wamid:
            message.wamid = update.wamid
            message.save(update_fields=["wamid", "updated"])
    if message is None:
        # One INSERT; a replay of the same status hits the unique constraint and is skipped.
        OrphanStatus.objects.bulk_create(
            [
                OrphanStatus(
                    wamid=update.wamid[:255],
                    status=update.status[:10],
                    timestamp=update.timestamp,
                    data=update.data or {},
                    event_id=event_id,
                )
            ],
            ignore_conflicts=True,
        )
        return None
    _apply_status_to(message, update)
    return message


def _message_by_callback(callback_data: str) -> Message | None:
    import uuid

    try:
        key = uuid.UUID(callback_data.removeprefix("atende:"))
    except ValueError:
        return None
    return Message.objects.select_for_update().filter(uuid=key).first()


def _apply_status_to(message: Message, update: StatusUpdate) -> None:
    status = update.status
    if status not in STATUS_TIME_FIELD:
        logger.info("message %s: ignoring unknown status %r", message.pk, status)
        return
    fields: list[str] = []
    time_field = STATUS_TIME_FIELD[status]
    if getattr(message, time_field) is None:
        setattr(message, time_field, update.timestamp)
        fields.append(time_field)
    if STATUS_RANK.get(status, -1) > STATUS_RANK.get(message.status, -1):
        message.status = status
        fields.append("status")
        if status == Message.Status.FAILED:
            error = (update.errors or [{}])[0] if isinstance((update.errors or [{}])[0], dict) else {}
            set_error(message, error)
            fields += ["error_code", "error_title", "error_details"]
    if update.pricing and not message.pricing:
        message.pricing = update.pricing
        fields.append("pricing")
    if fields:
        message.save(update_fields=[*fields, "updated"])
        events.message_updated(message, "status")
        if "status" in fields:
            signals.send_on_commit(
                signals.message_status_changed,
                message_id=message.pk,
                conversation_id=message.conversation_id,
                status=message.status,
            )


def set_error(message: Message, error: dict) -> None:
    code = error.get("code")
    try:
        message.error_code = int(code) if code is not None else None
    except (TypeError, ValueError):
        message.error_code = None
    message.error_title = str(error.get("title") or error.get("message") or "")[:500]
    details = error.get("error_data", {}).get("details") if isinstance(error.get("error_data"), dict) else None
    message.error_details = str(details or error.get("details") or error.get("message") or "")


def attach_wamid(message: Message, wamid: str) -> None:
    """Meta accepted an outbound message: store its wamid and apply any status that raced ahead
    of the send's answer. Must run in a transaction, with ``message`` locked."""
    fields = ["wamid", "updated"]
    message.wamid = wamid
    if STATUS_RANK[message.status] < STATUS_RANK[Message.Status.SENT]:
        message.status = Message.Status.SENT
        message.sent_at = message.sent_at or timezone.now()
        fields += ["status", "sent_at"]
    message.save(update_fields=fields)
    for orphan in OrphanStatus.objects.filter(wamid=wamid).order_by("timestamp"):
        data = orphan.data or {}
        _apply_status_to(
            message,
            StatusUpdate(
                wamid=wamid,
                status=orphan.status,
                timestamp=orphan.timestamp,
                errors=data.get("errors"),
                pricing=data.get("pricing"),
            ),
        )
        orphan.delete()
    events.message_updated(message, "status")
