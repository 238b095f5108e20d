"""Apply a stored webhook body: every entry, every change, every message, echo and status.

Parsing is defensive: Meta's payloads vary by API version, by product (coexistence, groups,
usernames) and by age, so a shape we do not expect is noted on the event and skipped, never
raised. Each message and status is applied in its own transaction, so one bad item does not
hold back the others; a failure is recorded and the event is retried (dedupe makes the retry
safe).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from conversations import services
from conversations.models import Inbox, Message
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

MESSAGE_FIELDS = {"messages", "smb_message_echoes"}


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


def process_body(body: bytes, *, event_id: int | None = None, received: datetime | None = None) -> Report:
    report = Report()
    received = received or timezone.now()
    try:
        payload = sanitize(json.loads(body))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        report.flag(f"body is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}")
        return report
    if not isinstance(payload, dict):
        report.flag("body is not a JSON object")
        return report
    obj = payload.get("object")
    if obj not in (None, "whatsapp_business_account"):
        report.flag(f"object is {obj!r}, not whatsapp_business_account")
        return report
    entries = payload.get("entry")
    if not isinstance(entries, list) or not entries:
        report.flag("no entry list")
        return report
    for entry in entries:
        if not isinstance(entry, dict):
            report.flag("an entry is not an object")
            continue
        changes = entry.get("changes")
        if not isinstance(changes, list):
            report.flag("an entry has no changes list")
            continue
        for change in changes:
            if not isinstance(change, dict):
                report.flag("a change is not an object")
                continue
            _process_change(as_str(entry.get("id")), change, report, event_id, received)
    return report


def _process_change(waba_id: str, change: dict, report: Report, event_id: int | None, received: datetime) -> None:
    name = as_str(change.get("field")) or "messages"
    value = change.get("value")
    report.fields.add(name)
    if not isinstance(value, dict):
        report.flag(f"{name}: value is not an object")
        return
    if name not in MESSAGE_FIELDS:
        _process_other_field(name, waba_id, value, report)
        return
    metadata = as_dict(value.get("metadata"))
    phone_number_id = as_str(metadata.get("phone_number_id"))
    if not phone_number_id:
        report.flag(f"{name}: partial envelope, no metadata.phone_number_id")
        return
    inbox = Inbox.objects.filter(phone_number_id=phone_number_id).first()
    if inbox is None:
        report.flag(f"{name}: unknown phone_number_id {phone_number_id}")
        return
    if not inbox.is_active:
        report.flag(f"{name}: inbox {inbox.pk} is inactive")
        return
    report.inbox = report.inbox or inbox
    contacts = [c for c in as_list(value.get("contacts")) if isinstance(c, dict)]

    for item in as_list(value.get("messages")):
        _guarded(
            report, "message", lambda item=item: _inbound(inbox, item, contacts, value, report, event_id, received)
        )
    for item in as_list(value.get("message_echoes")):
        _guarded(report, "echo", lambda item=item: _echo(inbox, item, contacts, report, event_id, received))
    for item in as_list(value.get("statuses")):
        _guarded(report, "status", lambda item=item: _status(item, report, event_id, received))
    for error in as_list(value.get("errors")):
        error = as_dict(error)
        text = f"Meta reported error {error.get('code')}: {error.get('title') or error.get('message')}"
        details = as_dict(error.get("error_data")).get("details")
        report.note(f"{text} ({details})" if details else text)
        logger.warning("inbox %s: %s", inbox.pk, text)
    for key in ("calls", "user_preferences"):
        if value.get(key):
            report.note(f"{name}: {key} received and kept on the event")


def _guarded(report: Report, what: str, apply: Any) -> None:
    try:
        with transaction.atomic():
            apply()
    except Exception as exc:  # one item's failure must not block its siblings
        logger.exception("webhook %s processing failed", what)
        report.errors.append(f"{what}: {type(exc).__name__}: {exc}")


def _process_other_field(name: str, waba_id: str, value: dict, report: Report) -> None:
    """Fields other than messages: handled where we act on them, otherwise logged."""
    inbox = Inbox.objects.filter(waba_id=waba_id).first() if waba_id else None
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
        report.note(f"account update: {event}")
        if (
            event.upper() in {"DISABLED_UPDATE", "ACCOUNT_RESTRICTION", "ACCOUNT_VIOLATION", "BAN"}
            or value.get("ban_info")
            or value.get("restriction_info")
        ):
            services.raise_alert(
                inbox, "account", f"Account update: {event}", details=json.dumps(value, ensure_ascii=False)
            )
    else:
        report.note(f"{name}: logged, no action")
    logger.info("webhook field %s for WABA %s logged", name, waba_id or "?")


def _inbound(
    inbox: Inbox, item: Any, contacts: list[dict], value: dict, report: Report, event_id: int | None, received: datetime
) -> None:
    if not isinstance(item, dict):
        report.flag("a messages[] item is not an object")
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
        report.flag(f"message {item.get('id')!r}: no sender (from, from_user_id or contact)")
        return
    new = build_message(inbox, item, received)
    if value.get("conversation_context"):
        new.content = {**(new.content or {}), "conversation_context": value["conversation_context"]}
    _message, created = services.record_message(inbox, identity, new, event_id=event_id)
    if created:
        report.created += 1
    else:
        report.duplicates += 1


def _echo(
    inbox: Inbox, item: Any, contacts: list[dict], report: Report, event_id: int | None, received: datetime
) -> None:
    """smb_message_echoes: the business answered from the WhatsApp Business app on its phone."""
    if not isinstance(item, dict):
        report.flag("a message_echoes[] item is not an object")
        return
    wa_id = as_str(item.get("to"))
    user_id = as_str(item.get("to_user_id"))
    contact = contact_for(contacts, wa_id, user_id)
    identity = identity_for(contact, wa_id, user_id, as_str(item.get("to_parent_user_id")))
    if not identity:
        report.flag(f"echo {item.get('id')!r}: no recipient")
        return
    new = build_message(inbox, item, received)
    new.direction = Message.Direction.OUT
    new.sender_kind = Message.SenderKind.PHONE_APP
    _message, created = services.record_message(inbox, identity, new, event_id=event_id)
    if created:
        report.created += 1
    else:
        report.duplicates += 1


def _status(item: Any, report: Report, event_id: int | None, received: datetime) -> None:
    if not isinstance(item, dict):
        report.flag("a statuses[] item is not an object")
        return
    wamid = as_str(item.get("id"))
    status = as_str(item.get("status")).lower()
    if not wamid or not status:
        report.flag("a status has no id or status")
        return
    update = StatusUpdate(
        wamid=wamid,
        status=status,
        timestamp=parse_timestamp(item.get("timestamp"), received),
        callback_data=as_str(item.get("biz_opaque_callback_data")),
        errors=as_list(item.get("errors")),
        pricing=as_dict(item.get("pricing")) or as_dict(as_dict(item.get("conversation")).get("pricing")),
        data=item,
    )
    report.statuses += 1
    if services.apply_status(update, event_id=event_id) is None:
        report.note(f"status {status} for unknown message {wamid} kept")
