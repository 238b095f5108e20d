"""Writes for inboxes, customers, conversations and messages. Intake, sending, the admin and
the tasks all come through here."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations import events, jobs, signals
from conversations.models import Alert, Conversation, Customer, Inbox, Message, OrphanStatus, alert_dedupe_key
from conversations.querycache import CompiledQuery, CompiledUpdate
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
    return _upsert_customer(identity)[0]


def _upsert_customer(identity: Identity) -> tuple[Customer, bool]:
    """``upsert_customer``, and whether this transaction created the customer."""
    customer = _find_customer(identity)
    if customer is None:
        try:
            with transaction.atomic():
                created = Customer.objects.create(
                    wa_id=identity.wa_id,
                    user_id=identity.user_id,
                    parent_user_id=identity.parent_user_id,
                    name=identity.name[:256],
                    username=identity.username[:128],
                    phone=e164(identity.wa_id),
                )
            return created, True
        except IntegrityError:
            customer = _find_customer(identity)
            if customer is None:
                raise
    refresh_profile(customer, identity)
    return customer, False


def refresh_profile(customer: Customer, identity: Identity) -> None:
    """Keep the customer's profile as the latest message shows it. No query when nothing changed
    (the common case: intake calls this for every message)."""
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


def _first(queryset: QuerySet[Any]) -> Any:
    """The first row or None. Unlike ``.first()`` this adds no ORDER BY: callers clear or choose
    the ordering (a lookup on a unique key needs none, and compiling it costs CPU per message)."""
    rows = list(queryset[:1])
    return rows[0] if rows else None


# --- Conversations ------------------------------------------------------------------------


def open_conversation(
    inbox: Inbox,
    customer: Customer,
    *,
    referral: dict | None = None,
    status: str = Conversation.Status.BOT,
) -> tuple[Conversation, bool]:
    """The customer's open conversation in this inbox, opening one if there is none. The row
    comes back locked so concurrent intake for the same conversation is serialised.

    ``status`` is who owns a conversation opened here: the bot for a customer's message, the
    queue (people) for an echo, since someone at the business is already answering from the
    WhatsApp Business app and the bot must not talk over them."""
    conversation = _first(Conversation.objects.select_for_update().open().filter(inbox=inbox, customer=customer))
    if conversation:
        return conversation, False
    reopened = _reopen_recent(inbox, customer, status)
    if reopened is not None:
        return reopened, False
    return _create_conversation(inbox, customer, referral=referral, status=status)


def _create_conversation(
    inbox: Inbox, customer: Customer, *, referral: dict | None, status: str
) -> tuple[Conversation, bool]:
    """A new open conversation (``open_conversation`` found none), or the one another worker
    opened first (the unique open-conversation constraint)."""
    referral = referral or {}
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                inbox=inbox,
                customer=customer,
                status=status,
                queued_since=timezone.now() if status == Conversation.Status.QUEUED else None,
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
        signals.conversation_opened,
        conversation_id=conversation.pk,
        inbox_id=inbox.pk,
        customer_id=customer.pk,
        reopened=False,
    )
    return conversation, True


def _reopen_recent(inbox: Inbox, customer: Customer, status: str) -> Conversation | None:
    """The customer's conversation closed less than ``inbox.reopen_hours`` ago, reopened (with
    the bot for a customer's message, in the queue for an echo), or None. Its timeline says so,
    and ``conversation_opened`` is sent with ``reopened=True`` (handoffs records the audit row)."""
    if not inbox.reopen_hours:
        return None
    since = timezone.now() - timedelta(hours=inbox.reopen_hours)
    closed = _first(
        Conversation.objects.select_for_update()
        .filter(inbox=inbox, customer=customer, status=Conversation.Status.CLOSED, closed__gte=since)
        .order_by("-closed", "-pk")
    )
    if closed is None:
        return None
    closed.status = status
    closed.assignee = None
    closed.closed = None
    closed.priority = Conversation.DEFAULT_PRIORITY
    closed.queued_since = timezone.now() if status == Conversation.Status.QUEUED else None
    try:
        with transaction.atomic():
            closed.save(update_fields=["status", "assignee", "closed", "priority", "queued_since", "updated"])
    except IntegrityError:
        # Another worker opened a conversation for this customer meanwhile: use that one.
        return Conversation.objects.select_for_update().open().get(inbox=inbox, customer=customer)
    record_event(closed, "reopen_by_customer")
    events.conversation_updated(closed)
    signals.send_on_commit(
        signals.conversation_opened,
        conversation_id=closed.pk,
        inbox_id=inbox.pk,
        customer_id=customer.pk,
        reopened=True,
    )
    return closed


def _locked_open_conversation(inbox: Inbox, identity: Identity) -> Conversation | None:
    """The steady state in one query: the customer's open conversation in this inbox, locked,
    with its customer. None when either does not exist yet; the caller then takes the long way
    (``upsert_customer``, which also finds a customer known only by another identifier)."""
    if identity.wa_id:
        rows = _OPEN_BY_WA_ID(inbox.pk, identity.wa_id)
    elif identity.user_id:
        rows = _OPEN_BY_USER_ID(inbox.pk, identity.user_id)
    else:
        return None
    return rows[0] if rows else None


def _open_locked(inbox_id: int, **match: str) -> QuerySet[Conversation]:
    # of=("self",): lock the conversation only; two conversations (two inboxes) of one customer
    # are applied in parallel.
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer")
        .open()
        .filter(inbox_id=inbox_id, **match)
        .order_by()[:1]
    )


# Compiled once per process (conversations/querycache.py): intake runs these for every message.
_OPEN_BY_WA_ID = CompiledQuery(lambda inbox_id, wa_id: _open_locked(inbox_id, customer__wa_id=wa_id), -1, "\0wa")
_OPEN_BY_USER_ID = CompiledQuery(lambda inbox_id, user: _open_locked(inbox_id, customer__user_id=user), -1, "\0user")


def _touch_conversation(conversation: Conversation, when: datetime, *, inbound: bool) -> None:
    fields = []
    if conversation.last_message is None or when > conversation.last_message:
        conversation.last_message = when
        fields.append("last_message")
    if inbound and (conversation.last_inbound is None or when > conversation.last_inbound):
        conversation.last_inbound = when
        fields.append("last_inbound")
    if fields:
        # What save(update_fields=[*fields, "updated"]) writes, through an UPDATE compiled once
        # per set of fields: intake runs this for nearly every message.
        fields.append("updated")
        conversation.updated = timezone.now()
        update = _TOUCH.get(tuple(fields)) or _TOUCH.setdefault(tuple(fields), CompiledUpdate(Conversation, fields))
        update(conversation.pk, *(getattr(conversation, name) for name in fields))


_TOUCH: dict[tuple[str, ...], CompiledUpdate] = {}


# --- Messages -----------------------------------------------------------------------------

# Reactions, edits and revokes act on another message: the key of their object naming it.
ACTION_TARGET_KEY = {"reaction": "message_id", "edit": "original_message_id", "revoke": "original_message_id"}


def record_message(
    inbox: Inbox, identity: Identity, new: NewMessage, *, event_id: int | None = None, history: bool = False
) -> tuple[Message, bool]:
    """Store one inbound or echoed message exactly once (unique wamid) and apply what it means.

    Where it goes: a reaction, edit or revoke joins the message it acts on, wherever that is
    among this customer's conversations in this inbox (a reaction to last month's message opens
    nothing). One whose message is not known yet waits for it (``action_pending``), in the open
    conversation or else the latest one, and is applied when that message arrives, in the same
    transaction. Anything else joins the customer's open conversation or opens one: owned by the
    bot for the customer's own message, by the queue for an echo.

    Must run inside a transaction. Returns (message, created). ``history=True`` stores past
    messages being loaded (seed_demo) without announcing them: nobody reacts to history.

    Steady state (customer and open conversation exist, a plain new message): four queries.
    The open conversation is locked first, which serialises one customer's intake, so the
    "is this wamid known?" read after it sees whatever a concurrent worker committed and a
    duplicate never reaches the insert: no savepoint is needed there. Every other path may
    race without that lock, so its insert runs in a savepoint."""
    conversation = _locked_open_conversation(inbox, identity)
    known, waiting, reply_to = _known_waiting_and_reply(new)
    if known is not None:
        return known, False
    new_customer = False
    if conversation is not None:
        customer = conversation.customer
        refresh_profile(customer, identity)
    else:
        customer, new_customer = _upsert_customer(identity)
    echo = new.direction == Message.Direction.OUT and new.sender_kind == Message.SenderKind.PHONE_APP
    target_wamid = _target_wamid(new)
    target = _find_target(inbox, customer, target_wamid) if target_wamid else None
    if target is not None:
        home = target.conversation
    elif reply_to is not None and _answers_in_place(new, reply_to, inbox, customer):
        home = reply_to.conversation
    elif conversation is not None:
        home = conversation
    elif target_wamid:
        # Waiting for a message we have not seen: no need to open a conversation to hold it if
        # the customer has one here already (even closed).
        home = _first(Conversation.objects.filter(inbox=inbox, customer=customer).order_by("-opened", "-pk"))
    else:
        home = None
    if home is None:
        status = Conversation.Status.QUEUED if echo else Conversation.Status.BOT
        if new_customer:
            # Created in this transaction: no conversation of theirs, open or closed, to look for.
            home, _ = _create_conversation(inbox, customer, referral=new.referral, status=status)
        else:
            home, _ = open_conversation(inbox, customer, referral=new.referral, status=status)
    if reply_to is not None and not _same_chat(reply_to, inbox, customer):
        reply_to = None  # a customer never links to another chat's message

    message = _new_row(new, home, reply_to, target_wamid, pending=bool(target_wamid) and target is None)
    message.event_id = event_id
    if conversation is not None and home.pk == conversation.pk:
        message.save(force_insert=True)
    else:
        try:
            with transaction.atomic():
                message.save(force_insert=True)
        except IntegrityError:
            # Same wamid stored by a concurrent worker between our check and insert.
            return Message.objects.get(wamid=new.wamid), False
    if home.status != Conversation.Status.CLOSED:
        _touch_conversation(home, new.timestamp, inbound=new.direction == Message.Direction.IN)
    events.message_created(message)
    if target is not None:
        _apply_action(message, target)
    _apply_waiting(message, [w for w in waiting if _same_chat(w, inbox, customer)])
    if message.type == "system":
        _apply_system(message, customer)
    announce = {
        (Message.Direction.IN, Message.SenderKind.CUSTOMER): signals.message_received,
        (Message.Direction.OUT, Message.SenderKind.PHONE_APP): signals.echo_received,
    }.get((message.direction, message.sender_kind))
    # History being loaded (seed_demo's sample chats, bot replies included) is not news: nobody
    # (the bot, the handoffs) reacts to it as to a message arriving now.
    if announce is not None and not history:
        # What receivers decide by (who owns it, what kind of message), so most need no query.
        signals.send_on_commit(
            announce,
            message_id=message.pk,
            conversation_id=home.pk,
            inbox_id=home.inbox_id,
            status=home.status,
            type=message.type,
        )
    if new.media_id:
        jobs.enqueue_on_commit(jobs.DOWNLOAD_MEDIA, message.pk)
    return message, True


def _known_waiting_and_reply(new: NewMessage) -> tuple[Message | None, list[Message], Message | None]:
    """One query for three questions: is this wamid stored already, which reactions/edits/revokes
    are waiting for it, and which message does it reply to. Callers check the chat of each."""
    if new.context_wamid:
        rows = _KNOWN_WAITING_OR_REPLIED(new.wamid, new.context_wamid[:255])
    else:
        rows = _KNOWN_OR_WAITING(new.wamid)
    known = reply_to = None
    waiting: list[Message] = []
    for row in rows:
        if row.wamid == new.wamid:
            known = row
        elif row.action_pending and row.target_wamid == new.wamid:
            waiting.append(row)
        if new.context_wamid and row.wamid == new.context_wamid[:255]:
            reply_to = row
    return known, waiting, reply_to


def _known_or_waiting(wamid: str, context_wamid: str | None = None) -> QuerySet[Message]:
    query = Q(wamid=wamid) | Q(target_wamid=wamid, action_pending=True)
    if context_wamid is not None:
        query |= Q(wamid=context_wamid)
    return Message.objects.filter(query).select_related("conversation").order_by()


_KNOWN_OR_WAITING = CompiledQuery(_known_or_waiting, "\0wamid")
_KNOWN_WAITING_OR_REPLIED = CompiledQuery(_known_or_waiting, "\0wamid", "\0context")


def _answers_in_place(new: NewMessage, reply_to: Message, inbox: Inbox, customer: Customer) -> bool:
    """A tap on a button of something the business sent after closing a conversation (the
    rating question) is recorded in that closed conversation and opens or reopens nothing;
    anything typed still goes to the customer's open or a new conversation."""
    if new.type not in ("interactive", "button") or reply_to.direction != Message.Direction.OUT:
        return False
    home = reply_to.conversation
    return (
        _same_chat(reply_to, inbox, customer)
        and home.status == Conversation.Status.CLOSED
        and home.closed is not None
        and reply_to.wa_timestamp >= home.closed
    )


def _same_chat(message: Message, inbox: Inbox, customer: Customer) -> bool:
    return message.conversation.inbox_id == inbox.pk and message.conversation.customer_id == customer.pk


def _target_wamid(new: NewMessage) -> str:
    key = ACTION_TARGET_KEY.get(new.type)
    value = (new.content or {}).get(key) if key else None
    return value[:255] if isinstance(value, str) else ""


def _find_target(inbox: Inbox, customer: Customer, wamid: str) -> Message | None:
    # Only among this customer's conversations in this inbox: a customer cannot touch another
    # chat's messages, whatever wamid they send.
    return _first(
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(wamid=wamid, conversation__inbox=inbox, conversation__customer=customer)
        .order_by()
    )


def _new_row(
    new: NewMessage, conversation: Conversation, reply_to: Message | None, target_wamid: str, *, pending: bool
) -> Message:
    message = Message(
        wamid=new.wamid,
        conversation=conversation,
        direction=new.direction,
        sender_kind=new.sender_kind,
        type=new.type[:40],
        text=new.text,
        content=new.content or {},
        caption=new.caption,
        media_id=new.media_id[:255],
        media_mime=new.media_mime[:255],
        media_sha256=new.media_sha256[:128],
        media_filename=new.media_filename[:500],
        media_status=Message.MediaStatus.PENDING if new.media_id else Message.MediaStatus.NONE,
        context_wamid=new.context_wamid[:255],
        reply_to=reply_to,
        forwarded=new.forwarded,
        frequently_forwarded=new.frequently_forwarded,
        referral=new.referral or {},
        wa_timestamp=new.timestamp,
        error_code=new.error_code,
        error_title=new.error_title[:500],
        error_details=new.error_details,
        raw=new.raw or {},
        target_wamid=target_wamid,
        action_pending=pending,
    )
    if new.direction == Message.Direction.OUT:
        message.status = Message.Status.SENT
        message.sent_at = new.timestamp
    return message


def _apply_waiting(message: Message, waiting: list[Message]) -> None:
    """Reactions, edits and revokes that arrived before ``message``: applied now, in WhatsApp
    order, in the transaction that stores it."""
    if not waiting:
        return
    waiting.sort(key=lambda action: (action.wa_timestamp, action.pk))
    for action in waiting:
        _apply_action(action, message)
    Message.objects.filter(pk__in=[action.pk for action in waiting], action_pending=True).update(
        action_pending=False, updated=timezone.now()
    )


def _apply_action(action: Message, target: Message) -> bool:
    """A reaction, edit or revoke changes the message it points at. Each side reacts for itself;
    only a message's author edits or deletes it (a customer's edit never rewrites our text)."""
    content = action.content or {}
    side = "business" if action.direction == Message.Direction.OUT else "customer"
    if action.type != "reaction" and action.direction != target.direction:
        logger.warning("message %s: %s of the other side's message %s ignored", action.pk, action.type, target.pk)
        return False
    if action.type == "reaction":
        emoji = content.get("emoji") or ""
        reactions = dict(target.reactions or {})
        if emoji:
            reactions[side] = emoji
        else:
            reactions.pop(side, None)
        target.reactions = reactions
        target.save(update_fields=["reactions", "updated"])
    elif action.type == "edit":
        history = list(target.edit_history or [])
        history.append(
            {
                "text": target.text,
                "caption": target.caption,
                "replaced_at": action.wa_timestamp.isoformat(),
                "by_wamid": action.wamid,
            }
        )
        target.edit_history = history
        target.text = action.text
        if action.caption or target.caption:
            target.caption = action.caption
        target.edited = action.wa_timestamp
        target.save(update_fields=["edit_history", "text", "caption", "edited", "updated"])
    elif action.type == "revoke":
        target.revoked = action.wa_timestamp
        target.save(update_fields=["revoked", "updated"])
    else:
        return False
    events.message_updated(target, action.type)
    return True


def _apply_system(message: Message, customer: Customer) -> None:
    content = message.content or {}
    kind = content.get("type")
    if kind == "user_changed_number":
        change_customer_number(customer, str(content.get("wa_id") or ""))
    elif kind == "user_changed_user_id":
        change_customer_user_id(customer, str(content.get("user_id") or ""))


# --- Delivery statuses ----------------------------------------------------------------------


def apply_status(update: StatusUpdate, *, event_id: int | None = None) -> Message | None:
    """Move an outbound message's delivery status forward; keep one for an unknown wamid for
    later. Must run in a transaction. Returns the message, or None when it is not ours (yet).

    A status describes one of our sends: one naming an inbound message (a customer's) is
    returned untouched, never applied."""
    message = _first(Message.objects.select_for_update().filter(wamid=update.wamid).order_by())
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
    try:
        key = uuid.UUID(callback_data.removeprefix("atende:"))
    except ValueError:
        return None
    return _first(Message.objects.select_for_update().filter(uuid=key, direction=Message.Direction.OUT).order_by())


def _apply_status_to(message: Message, update: StatusUpdate) -> None:
    if message.direction != Message.Direction.OUT:
        # Only our sends have a delivery status; a customer's message is never "read" or "played".
        logger.warning("message %s is inbound: status %r ignored", message.pk, update.status)
        return
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
    if message.direction != Message.Direction.OUT:
        raise ValueError(f"message {message.pk} is inbound: only our sends get a wamid from Meta's answer")
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


# --- Ownership ----------------------------------------------------------------------------


def set_ownership(conversation: Conversation, *, status: str, assignee: Any, closed: datetime | None) -> None:
    """Write who owns a conversation and publish it. Only ``handoffs.services`` calls this: it
    locks the row and checks the transition first (``conversations`` never imports it).

    Runs in its own savepoint: reopening while the customer has another open conversation in
    the inbox breaks the one-open-conversation constraint, and the IntegrityError must leave
    the caller's transaction usable so it can refuse cleanly."""
    if status == Conversation.Status.QUEUED:
        if conversation.status != Conversation.Status.QUEUED or conversation.queued_since is None:
            conversation.queued_since = timezone.now()
    else:
        conversation.queued_since = None
        conversation.priority = Conversation.DEFAULT_PRIORITY
    conversation.status = status
    conversation.assignee = assignee
    conversation.closed = closed
    with transaction.atomic():
        conversation.save(update_fields=["status", "assignee", "closed", "queued_since", "priority", "updated"])
    events.conversation_updated(conversation)


def set_priority(conversation: Conversation, priority: int) -> None:
    """A waiting conversation's place in the queue (a handoff's priority). Caller holds the row lock."""
    if conversation.priority != priority:
        conversation.priority = priority
        conversation.save(update_fields=["priority", "updated"])
        events.conversation_updated(conversation)


# --- The console: notes, system events, labels, customer notes ------------------------------------


def _record_internal(
    conversation: Conversation, *, type: str, sender_kind: str, sender: Any, text: str, content: dict
) -> Message:
    # Internal rows are never sent and carry no wamid; they do not touch last_message, so a note
    # or an event never moves a conversation up the lists as if the customer had written.
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.INTERNAL,
        sender_kind=sender_kind,
        sender=sender,
        type=type,
        text=text,
        content=content,
        status=Message.Status.RECEIVED,
        wa_timestamp=timezone.now(),
    )
    events.message_created(message)
    return message


def add_note(conversation: Conversation, author: Any, text: str) -> Message:
    """An internal note between attendants (type "note"): shown in the timeline, never sent.
    ``text`` must be non-blank (the console checks it and says so)."""
    text = (text or "").strip()
    if not text:
        raise ValueError("an internal note needs text")
    return _record_internal(
        conversation, type="note", sender_kind=Message.SenderKind.ATTENDANT, sender=author, text=text, content={}
    )


def set_transcript(message: Message, text: str) -> None:
    """A voice note's words (from the bot's transcription endpoint), shown under the player."""
    message.transcript = text
    message.save(update_fields=["transcript", "updated"])
    events.message_updated(message, "transcript")


def record_event(conversation: Conversation, kind: str, **content: Any) -> Message:
    """A system event in the timeline ("taken over by Ana"), type "event". ``content`` holds
    ids and names, not sentences: the console renders it translated at display time."""
    return _record_internal(
        conversation,
        type="event",
        sender_kind=Message.SenderKind.SYSTEM,
        sender=None,
        text="",
        content={"action": kind, **content},
    )


def set_labels(conversation: Conversation, labels: Any, actor: Any) -> list[int]:
    """Replace the conversation's labels. Only labels of its inbox or global ones may be put on
    it (a ValueError otherwise, and nothing changes). Returns the label ids now on it."""
    from conversations.models import Label

    wanted = {label.pk if hasattr(label, "pk") else int(label) for label in labels}
    allowed = set(
        Label.objects.filter(Q(inbox_id=conversation.inbox_id) | Q(inbox__isnull=True), pk__in=wanted).values_list(
            "pk", flat=True
        )
    )
    if allowed != wanted:
        raise ValueError("labels from another inbox")
    with transaction.atomic():
        conversation.labels.set(sorted(allowed))
        Conversation.objects.filter(pk=conversation.pk).update(updated=timezone.now())
        events.conversation_updated(conversation)
    logger.info(
        "labels of conversation %s set to %s by user %s", conversation.pk, sorted(allowed), getattr(actor, "pk", None)
    )
    return sorted(allowed)


def set_customer_notes(customer: Customer, text: str, actor: Any) -> None:
    """The team's notes about a customer (the customer panel). Every open conversation of the
    customer redraws."""
    with transaction.atomic():
        customer.notes = (text or "").strip()
        customer.save(update_fields=["notes", "updated"])
        for conversation in (
            Conversation.objects.open().filter(customer=customer).only("pk", "inbox_id", "status", "assignee_id")
        ):
            events.conversation_updated(conversation)
    logger.info("notes of customer %s changed by user %s", customer.pk, getattr(actor, "pk", None))


def set_resolution(conversation: Conversation, text: str) -> None:
    """The closing note on the conversation itself (``handoffs.services.close`` keeps it on the
    audit row; the console calls both in one transaction)."""
    conversation.resolution = (text or "").strip()
    Conversation.objects.filter(pk=conversation.pk).update(resolution=conversation.resolution)
