"""Apply a stored webhook body: every entry, every change, every message, echo and status.

Parsing is defensive: Meta's payloads vary by API version, by product (coexistence, groups,
usernames) and by age, so a shape we do not expect is noted on the event and skipped, never
raised. When a body holds several items each is applied in its own savepoint, so one bad item
does not hold back the others; a failure is recorded and the event is retried (dedupe makes the
retry safe). A body of one item (most of them) is applied without a savepoint of its own: the
savepoint ``processing`` puts around it (its batch's, or the event's own when the batch is
applied again event by event) covers it, and two statements fewer per message count.

Each change is applied only to an inbox whose own app secret signed the body. The webhook view
accepts a body signed by any active inbox's secret; without this check a body signed with
inbox A's secret could write into inbox B by naming B's phone number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from conversations import services
from conversations.models import Inbox, Message
from conversations.whatsapp import signature as signatures
from conversations.whatsapp.parsing import (
    StatusUpdate,
    as_dict,
    as_list,
    as_str,
    build_message,
    contact_for,
    identity_for,
    parse_timestamp,
    sanitize,
)

logger = logging.getLogger(__name__)
security_log = logging.getLogger("atende.security")

MESSAGE_FIELDS = {"messages", "smb_message_echoes"}
ITEM_KEYS = ("messages", "message_echoes", "statuses")


@dataclass
class Report:
    """What processing an event found, written back onto the WebhookEvent."""

    inbox: Inbox | None = None
    fields: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    created: int = 0
    duplicates: int = 0
    statuses: int = 0

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def flag(self, text: str) -> None:
        if text not in self.flags:
            self.flags.append(text)


class SignedBy:
    """Which app secrets signed this body, worked out once per secret (inboxes of one Meta app
    share theirs, so a body of many changes costs one HMAC per app)."""

    def __init__(self, body: bytes, header: str) -> None:
        self._body = body
        self._header = header
        self._answers: dict[str, bool] = {}

    def __call__(self, secret: str) -> bool:
        if not secret:
            return False
        if secret not in self._answers:
            self._answers[secret] = signatures.verify(self._body, self._header, [secret]) is not None
        return self._answers[secret]


@dataclass
class _Context:
    report: Report
    signed_by: SignedBy
    event_id: int | None
    received: datetime
    # One item in the whole body: no savepoint of its own (see the module docstring).
    guard: bool
    # Inboxes by phone_number_id already looked up (a worker's batch shares one: see
    # ``process_body``).
    inboxes: dict[str, Inbox | None]


def process_body(
    body: bytes,
    *,
    signature: str,
    event_id: int | None = None,
    received: datetime | None = None,
    inboxes: dict[str, Inbox | None] | None = None,
) -> Report:
    """Apply ``body``, whose ``X-Hub-Signature-256`` header was ``signature``. Must run in a
    transaction. A single-item body lets its item's exception through, for the caller's
    savepoint to roll back; with several items, each failure is caught and reported.

    ``inboxes`` remembers the inboxes looked up by phone_number_id, for the caller to share
    between the bodies it applies in one transaction (a worker's batch: one query per batch
    instead of one per message).

    The notes and flags are written in LANGUAGE_CODE (as ``processing`` writes its summary),
    whichever request or worker applies the body."""
    with translation.override(settings.LANGUAGE_CODE):
        return _process_body(body, signature, event_id, received, {} if inboxes is None else inboxes)


def _process_body(
    body: bytes, signature: str, event_id: int | None, received: datetime | None, inboxes: dict[str, Inbox | None]
) -> Report:
    report = Report()
    try:
        payload = sanitize(json.loads(body))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        report.flag(gettext("body is not valid JSON: %(error)s") % {"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        return report
    if not isinstance(payload, dict):
        report.flag(gettext("body is not a JSON object"))
        return report
    obj = payload.get("object")
    if obj not in (None, "whatsapp_business_account"):
        report.flag(gettext("object is %(object)r, not whatsapp_business_account") % {"object": obj})
        return report
    entries = payload.get("entry")
    if not isinstance(entries, list) or not entries:
        report.flag(gettext("no entry list"))
        return report
    changes: list[tuple[str, dict]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            report.flag(gettext("an entry is not an object"))
            continue
        entry_changes = entry.get("changes")
        if not isinstance(entry_changes, list):
            report.flag(gettext("an entry has no changes list"))
            continue
        for change in entry_changes:
            if not isinstance(change, dict):
                report.flag(gettext("a change is not an object"))
                continue
            changes.append((as_str(entry.get("id")), change))
    items = sum(len(as_list(as_dict(change.get("value")).get(key))) for _, change in changes for key in ITEM_KEYS)
    context = _Context(
        report=report,
        signed_by=SignedBy(body, signature),
        event_id=event_id,
        received=received or timezone.now(),
        guard=items > 1,
        inboxes=inboxes,
    )
    for waba_id, change in changes:
        _process_change(waba_id, change, context)
    return report


def _process_change(waba_id: str, change: dict, context: _Context) -> None:
    report = context.report
    name = as_str(change.get("field")) or "messages"
    value = change.get("value")
    report.fields.add(name)
    if not isinstance(value, dict):
        report.flag(gettext("%(field)s: value is not an object") % {"field": name})
        return
    if name not in MESSAGE_FIELDS:
        _process_other_field(name, waba_id, value, context)
        return
    metadata = as_dict(value.get("metadata"))
    phone_number_id = as_str(metadata.get("phone_number_id"))
    if not phone_number_id:
        report.flag(gettext("%(field)s: partial envelope, no metadata.phone_number_id") % {"field": name})
        return
    if phone_number_id not in context.inboxes:
        context.inboxes[phone_number_id] = Inbox.objects.filter(phone_number_id=phone_number_id).first()
    inbox = context.inboxes[phone_number_id]
    if inbox is None:
        report.flag(
            gettext("%(field)s: unknown phone_number_id %(phone_number_id)s")
            % {"field": name, "phone_number_id": phone_number_id}
        )
        return
    if not inbox.is_active:
        report.flag(gettext("%(field)s: inbox %(inbox)s is inactive") % {"field": name, "inbox": inbox.pk})
        return
    if not context.signed_by(inbox.app_secret):
        _refuse(name, [inbox], context)
        return
    report.inbox = report.inbox or inbox
    contacts = [c for c in as_list(value.get("contacts")) if isinstance(c, dict)]

    for item in as_list(value.get("messages")):
        _apply(context, "message", lambda item=item: _inbound(inbox, item, contacts, value, context))
    for item in as_list(value.get("message_echoes")):
        _apply(context, "echo", lambda item=item: _echo(inbox, item, contacts, context))
    for item in as_list(value.get("statuses")):
        _apply(context, "status", lambda item=item: _status(item, context))
    for error in as_list(value.get("errors")):
        error = as_dict(error)
        text = gettext("Meta reported error %(code)s: %(title)s") % {
            "code": error.get("code"),
            "title": error.get("title") or error.get("message"),
        }
        details = as_dict(error.get("error_data")).get("details")
        report.note(f"{text} ({details})" if details else text)
        logger.warning("inbox %s: %s", inbox.pk, text)
    for key in ("calls", "user_preferences"):
        if value.get(key):
            report.note(gettext("%(field)s: %(key)s received and kept on the event") % {"field": name, "key": key})


def _refuse(name: str, inboxes: list[Inbox], context: _Context) -> None:
    """A change for inboxes whose own secret did not sign the body: nothing of it is applied."""
    labels = ", ".join(str(inbox.pk) for inbox in inboxes)
    context.report.flag(
        gettext("%(field)s: not signed with the app secret of inbox %(inboxes)s; nothing applied")
        % {"field": name, "inboxes": labels}
    )
    security_log.warning(
        "webhook event %s: %s change for inbox %s signed with another inbox's app secret, not applied",
        context.event_id,
        name,
        labels,
    )


def _apply(context: _Context, what: str, apply: Callable[[], None]) -> None:
    if not context.guard:
        apply()
        return
    try:
        with transaction.atomic():
            apply()
    except Exception as exc:  # one item's failure must not block its siblings
        logger.exception("webhook %s processing failed", what)
        context.report.errors.append(f"{what}: {type(exc).__name__}: {exc}")


def _process_other_field(name: str, waba_id: str, value: dict, context: _Context) -> None:
    """Fields other than messages: handled where we act on them, otherwise logged."""
    report = context.report
    inboxes = list(Inbox.objects.filter(waba_id=waba_id).order_by("pk")) if waba_id else []
    signed = [inbox for inbox in inboxes if context.signed_by(inbox.app_secret)]
    if inboxes and not signed:
        _refuse(name, inboxes, context)
        return
    # A WABA we have no inbox for: noted, and alerts are raised without an inbox.
    inbox = signed[0] if signed else None
    report.inbox = report.inbox or inbox
    if name == "message_template_status_update":
        event = as_str(value.get("event"))
        template = as_str(value.get("message_template_name"))
        text = f"template {template!r} ({as_str(value.get('message_template_language'))}): {event}"
        reason = as_str(value.get("reason"))
        if reason and reason.upper() != "NONE":
            text += f", reason {reason}"
        report.note(text)
        if event.upper() in {"REJECTED", "DISABLED", "PAUSED", "FLAGGED"}:
            services.raise_alert(inbox, "template", text[:300], details=json.dumps(value, ensure_ascii=False))
    elif name == "account_update":
        event = as_str(value.get("event"))
        report.note(gettext("account update: %(event)s") % {"event": event})
        if (
            event.upper() in {"DISABLED_UPDATE", "ACCOUNT_RESTRICTION", "ACCOUNT_VIOLATION", "BAN"}
            or value.get("ban_info")
            or value.get("restriction_info")
        ):
            services.raise_alert(
                inbox, "account", f"Account update: {event}", details=json.dumps(value, ensure_ascii=False)
            )
    else:
        report.note(gettext("%(field)s: logged, no action") % {"field": name})
    logger.info("webhook field %s for WABA %s logged", name, waba_id or "?")


def _count(report: Report, created: bool) -> None:
    if created:
        report.created += 1
    else:
        report.duplicates += 1


def _inbound(inbox: Inbox, item: Any, contacts: list[dict], value: dict, context: _Context) -> None:
    report = context.report
    if not isinstance(item, dict):
        report.flag(gettext("a messages[] item is not an object"))
        return
    wa_id = as_str(item.get("from"))
    user_id = as_str(item.get("from_user_id"))
    system = as_dict(item.get("system"))
    if not wa_id and not user_id:
        # user_changed_user_id system messages name the user only inside the system object.
        user_id = as_str(system.get("previous_user_id"))
    contact = contact_for(contacts, wa_id, user_id)
    identity = identity_for(contact, wa_id, user_id, as_str(item.get("from_parent_user_id")))
    if not identity:
        report.flag(gettext("message %(id)r: no sender (from, from_user_id or contact)") % {"id": item.get("id")})
        return
    new = build_message(inbox, item, context.received)
    if value.get("conversation_context"):
        new.content = {**(new.content or {}), "conversation_context": value["conversation_context"]}
    _message, created = services.record_message(inbox, identity, new, event_id=context.event_id)
    _count(report, created)


def _echo(inbox: Inbox, item: Any, contacts: list[dict], context: _Context) -> None:
    """smb_message_echoes: the business answered from the WhatsApp Business app on its phone."""
    report = context.report
    if not isinstance(item, dict):
        report.flag(gettext("a message_echoes[] item is not an object"))
        return
    wa_id = as_str(item.get("to"))
    user_id = as_str(item.get("to_user_id"))
    contact = contact_for(contacts, wa_id, user_id)
    identity = identity_for(contact, wa_id, user_id, as_str(item.get("to_parent_user_id")))
    if not identity:
        report.flag(gettext("echo %(id)r: no recipient") % {"id": item.get("id")})
        return
    new = build_message(inbox, item, context.received)
    new.direction = Message.Direction.OUT
    new.sender_kind = Message.SenderKind.PHONE_APP
    _message, created = services.record_message(inbox, identity, new, event_id=context.event_id)
    _count(report, created)


def _status(item: Any, context: _Context) -> None:
    report = context.report
    if not isinstance(item, dict):
        report.flag(gettext("a statuses[] item is not an object"))
        return
    wamid = as_str(item.get("id"))
    status = as_str(item.get("status")).lower()
    if not wamid or not status:
        report.flag(gettext("a status has no id or status"))
        return
    update = StatusUpdate(
        wamid=wamid,
        status=status,
        timestamp=parse_timestamp(item.get("timestamp"), context.received),
        callback_data=as_str(item.get("biz_opaque_callback_data")),
        errors=as_list(item.get("errors")),
        pricing=as_dict(item.get("pricing")) or as_dict(as_dict(item.get("conversation")).get("pricing")),
        data=item,
    )
    report.statuses += 1
    message = services.apply_status(update, event_id=context.event_id)
    if message is None:
        report.note(
            gettext("status %(status)s for unknown message %(wamid)s kept") % {"status": status, "wamid": wamid}
        )
    elif message.direction != Message.Direction.OUT:
        report.note(
            gettext("status %(status)s for the customer's message %(wamid)s ignored")
            % {"status": status, "wamid": wamid}
        )
