"""Apply a stored webhook body: every entry, every change, every message, echo and status.

Parsing is defensive: Meta's payloads vary by API version, by product (coexistence, groups,
usernames) and by age, so a shape we do not expect is noted on the event and skipped, never
raised. Each message and status is applied in its own transaction, so one bad item does not
hold back the others; a failure is recorded and the event is retried (dedupe makes the retry
safe).
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg.generators
import psycopg.pq
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from conversations import events, services
from conversations.models import MEDIA_TYPES, Inbox, Message, WebhookEvent

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


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _clean_text(value: str) -> str:
    # PostgreSQL text and jsonb refuse NUL, and UTF-8 cannot carry a lone surrogate ("\ud800"
    # is valid JSON): replace both rather than fail on a hostile or broken message forever.
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def sanitize(value: Any) -> Any:
    """Make every string of a decoded payload storable."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(item) for item in value]
    return value


def parse_timestamp(value: Any, fallback: datetime) -> datetime:
    """WhatsApp sends unix seconds as a string (sometimes as a number)."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError):
        return fallback
    if seconds <= 0 or seconds > 32503680000:  # beyond year 3000: garbage
        return fallback
    return datetime.fromtimestamp(seconds, tz=UTC)


def synthetic_wamid(phone_number_id: str, item: dict) -> str:
    """A stable id for an item that arrived without one, so a replay still dedupes."""
    digest = hashlib.sha256(
        (phone_number_id + json.dumps(item, sort_keys=True, ensure_ascii=True)).encode()
    ).hexdigest()
    return f"noid:{digest}"


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
            _process_change(_str(entry.get("id")), change, report, event_id, received)
    return report


def _process_change(waba_id: str, change: dict, report: Report, event_id: int | None, received: datetime) -> None:
    name = _str(change.get("field")) or "messages"
    value = change.get("value")
    report.fields.add(name)
    if not isinstance(value, dict):
        report.flag(f"{name}: value is not an object")
        return
    if name not in MESSAGE_FIELDS:
        _process_other_field(name, waba_id, value, report)
        return
    metadata = _dict(value.get("metadata"))
    phone_number_id = _str(metadata.get("phone_number_id"))
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
    contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]

    for item in _list(value.get("messages")):
        _guarded(
            report, "message", lambda item=item: _inbound(inbox, item, contacts, value, report, event_id, received)
        )
    for item in _list(value.get("message_echoes")):
        _guarded(report, "echo", lambda item=item: _echo(inbox, item, contacts, report, event_id, received))
    for item in _list(value.get("statuses")):
        _guarded(report, "status", lambda item=item: _status(item, report, event_id, received))
    for error in _list(value.get("errors")):
        error = _dict(error)
        text = f"Meta reported error {error.get('code')}: {error.get('title') or error.get('message')}"
        details = _dict(error.get("error_data")).get("details")
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
        event = _str(value.get("event"))
        template = _str(value.get("message_template_name"))
        text = f"template {template!r} ({_str(value.get('message_template_language'))}): {event}"
        reason = _str(value.get("reason"))
        if reason and reason.upper() != "NONE":
            text += f", reason {reason}"
        report.note(text)
        if event.upper() in {"REJECTED", "DISABLED", "PAUSED", "FLAGGED"}:
            services.raise_alert(inbox, "template", text[:300], details=json.dumps(value, ensure_ascii=False))
    elif name == "account_update":
        event = _str(value.get("event"))
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


def _contact_for(contacts: list[dict], wa_id: str, user_id: str) -> dict:
    for contact in contacts:
        if wa_id and _str(contact.get("wa_id")) == wa_id:
            return contact
        if user_id and _str(contact.get("user_id")) == user_id:
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _identity(contact: dict, wa_id: str, user_id: str, parent_user_id: str = "") -> services.Identity:
    profile = _dict(contact.get("profile"))
    return services.Identity(
        wa_id=wa_id or _str(contact.get("wa_id")),
        user_id=user_id or _str(contact.get("user_id")),
        parent_user_id=parent_user_id or _str(contact.get("parent_user_id")),
        name=_str(profile.get("name")),
        username=_str(profile.get("username")),
    )


def _inbound(
    inbox: Inbox, item: Any, contacts: list[dict], value: dict, report: Report, event_id: int | None, received: datetime
) -> None:
    if not isinstance(item, dict):
        report.flag("a messages[] item is not an object")
        return
    wa_id = _str(item.get("from"))
    user_id = _str(item.get("from_user_id"))
    system = _dict(item.get("system"))
    if not wa_id and not user_id:
        # user_changed_user_id system messages name the user only inside the system object.
        user_id = _str(system.get("previous_user_id"))
    contact = _contact_for(contacts, wa_id, user_id)
    identity = _identity(contact, wa_id, user_id, _str(item.get("from_parent_user_id")))
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
    wa_id = _str(item.get("to"))
    user_id = _str(item.get("to_user_id"))
    contact = _contact_for(contacts, wa_id, user_id)
    identity = _identity(contact, wa_id, user_id, _str(item.get("to_parent_user_id")))
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
    wamid = _str(item.get("id"))
    status = _str(item.get("status")).lower()
    if not wamid or not status:
        report.flag("a status has no id or status")
        return
    update = services.StatusUpdate(
        wamid=wamid,
        status=status,
        timestamp=parse_timestamp(item.get("timestamp"), received),
        callback_data=_str(item.get("biz_opaque_callback_data")),
        errors=_list(item.get("errors")),
        pricing=_dict(item.get("pricing")) or _dict(_dict(item.get("conversation")).get("pricing")),
        data=item,
    )
    report.statuses += 1
    if services.apply_status(update, event_id=event_id) is None:
        report.note(f"status {status} for unknown message {wamid} kept")


# --- Building a NewMessage from a messages[] item ------------------------------------------


def build_message(inbox: Inbox, item: dict, received: datetime) -> services.NewMessage:
    """Map any inbound message type onto our columns, keeping its object whole in ``content``."""
    mtype = _str(item.get("type")) or "unknown"
    wamid = _str(item.get("id")) or synthetic_wamid(inbox.phone_number_id, item)
    body = item.get(mtype)
    content = dict(body) if isinstance(body, dict) else ({"value": body} if body is not None else {})
    context = _dict(item.get("context"))
    new = services.NewMessage(
        wamid=wamid[:255],
        type=mtype,
        timestamp=parse_timestamp(item.get("timestamp"), received),
        content=content,
        context_wamid=_str(context.get("id")),
        forwarded=bool(context.get("forwarded")),
        frequently_forwarded=bool(context.get("frequently_forwarded")),
        referral=_dict(item.get("referral")) or None,
        raw=item,
    )
    if context.get("referred_product"):
        new.content = {**content, "referred_product": context["referred_product"]}

    if mtype == "text":
        new.text = _str(content.get("body"))
    elif mtype in MEDIA_TYPES:
        _media_fields(new, content)
    elif mtype == "interactive":
        new.text = _interactive_text(content)
    elif mtype == "button":
        new.text = _str(content.get("text")) or _str(content.get("payload"))
    elif mtype == "order":
        new.text = _str(content.get("text"))
    elif mtype == "system":
        new.text = _str(content.get("body"))
        new.sender_kind = services.Message.SenderKind.SYSTEM
    elif mtype == "location":
        new.text = ", ".join(p for p in (_str(content.get("name")), _str(content.get("address"))) if p)
    elif mtype == "contacts":
        names = [_str(_dict(c.get("name")).get("formatted_name")) for c in _list(body) if isinstance(c, dict)]
        new.content = {"contacts": _list(body)}
        new.text = ", ".join(n for n in names if n)
    elif mtype == "edit":
        edited = _dict(content.get("message"))
        inner_type = _str(edited.get("type"))
        inner = _dict(edited.get(inner_type))
        new.text = _str(inner.get("body")) if inner_type == "text" else ""
        new.caption = _str(inner.get("caption"))

    errors = [e for e in _list(item.get("errors")) if isinstance(e, dict)]
    if errors:
        error = errors[0]
        try:
            new.error_code = int(error.get("code")) if error.get("code") is not None else None
        except (TypeError, ValueError):
            new.error_code = None
        new.error_title = _str(error.get("title")) or _str(error.get("message"))
        new.error_details = _str(_dict(error.get("error_data")).get("details")) or _str(error.get("details"))
        if mtype in MEDIA_TYPES:
            # Meta could not fetch the customer's file (131052 and friends): nothing to download.
            new.media_id = ""
    return new


def _media_fields(new: services.NewMessage, content: dict) -> None:
    new.media_id = _str(content.get("id"))
    new.media_mime = _str(content.get("mime_type"))
    new.media_sha256 = _str(content.get("sha256"))
    new.media_filename = _str(content.get("filename"))
    new.caption = _str(content.get("caption"))


def _interactive_text(content: dict) -> str:
    kind = _str(content.get("type"))
    reply = _dict(content.get(kind))
    if kind in ("button_reply", "list_reply"):
        return _str(reply.get("title"))
    if kind == "nfm_reply":
        return _str(reply.get("body")) or _str(reply.get("name"))
    return _str(reply.get("title")) or _str(reply.get("body"))


# --- Webhook events: store before answering, process after ----------------------------------


# The webhook's hot path talks to libpq directly: one statement prepared once per connection,
# parameters sent as they are (the body as binary), no cursor. Through a psycopg cursor the same
# INSERT cost about 0.22 ms of client CPU, through the ORM about 0.39 ms; this costs about
# 0.04 ms (docs/benchmarks.md). `received` is the database's clock at the INSERT.
_STORE_EVENT_STATEMENT = b"atende_store_webhook_event"
_STORE_EVENT_SQL = (
    b"INSERT INTO conversations_webhookevent (received, body, body_sha256, signature, signature_valid,"
    b" remote_addr, state, fields, attempts, last_error, notes)"
    b" VALUES (statement_timestamp(), $1::bytea, $2, $3, $4::boolean, $5::inet, $6, '', 0, '', '') RETURNING id"
)
_BINARY, _TEXT = 1, 0


def store_event(body: bytes, *, signature: str, signature_valid: bool, remote_addr: str | None) -> int:
    """Keep the body byte for byte and return the new event's id.

    Outside a transaction (the webhook view) the row is committed when this returns, so it is
    durable before the 200. Database errors come out as Django's ``DatabaseError``."""
    sha256 = hashlib.sha256(body).hexdigest()
    # Whatever a client put in its header is kept for the record, minus what a text column
    # cannot hold; an address that is not one is dropped rather than failing the INSERT.
    signature = signature[:200].replace("\x00", "")
    remote_addr = _ip_or_none(remote_addr)
    state = WebhookEvent.State.PENDING if signature_valid else WebhookEvent.State.REJECTED
    db = connections[DEFAULT_DB_ALIAS]  # once: every `connection.x` is a thread-local lookup
    if db.vendor == "postgresql" and db.get_autocommit():
        return _store_event_postgresql(db, body, sha256, signature, signature_valid, remote_addr, state)
    event = WebhookEvent(
        received=timezone.now(),
        body=body,
        body_sha256=sha256,
        signature=signature,
        signature_valid=signature_valid,
        remote_addr=remote_addr,
        state=state,
    )
    event.save(force_insert=True)
    return event.pk


def _ip_or_none(value: str | None) -> str | None:
    # inet_pton, not the ipaddress module: same answer here at a twentieth of the cost.
    if not value:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
            return value
        except (OSError, ValueError):
            continue
    return None


def _store_event_postgresql(
    db: BaseDatabaseWrapper,
    body: bytes,
    sha256: str,
    signature: str,
    signature_valid: bool,
    remote_addr: str | None,
    state: str,
) -> int:
    # get_autocommit() above opened the connection; wrap_database_errors turns psycopg's
    # errors into Django's (the view answers 503 on those).
    conn = db.connection
    params = [
        body,
        sha256.encode(),
        signature.encode("utf-8", "replace"),
        b"t" if signature_valid else b"f",
        remote_addr.encode() if remote_addr else None,
        state.encode(),
    ]
    with db.wrap_database_errors:
        if getattr(conn, "_atende_store_prepared", None) is not conn.pgconn:
            _prepare_store_event(conn)
        result = _execute_store_event(conn, params)
        if result.status == psycopg.pq.ExecStatus.FATAL_ERROR and result.error_field(_SQLSTATE) == b"26000":
            # The server forgot the statement (DISCARD ALL, a pooler in between): prepare again.
            _prepare_store_event(conn)
            result = _execute_store_event(conn, params)
        _check(result, conn, psycopg.pq.ExecStatus.TUPLES_OK)
        return int(result.get_value(0, 0))


_SQLSTATE = psycopg.pq.DiagnosticField.SQLSTATE


def _prepare_store_event(conn: psycopg.Connection) -> None:
    pgconn = conn.pgconn
    pgconn.send_prepare(_STORE_EVENT_STATEMENT, _STORE_EVENT_SQL)
    result = conn.wait(psycopg.generators.execute(pgconn))[-1]
    # 42P05: already prepared in this session (we lost track of it after an error), which is fine.
    if result.error_field(_SQLSTATE) != b"42P05":
        _check(result, conn, psycopg.pq.ExecStatus.COMMAND_OK)
    conn._atende_store_prepared = pgconn


def _execute_store_event(conn: psycopg.Connection, params: list[bytes | None]) -> psycopg.pq.abc.PGresult:
    pgconn = conn.pgconn
    pgconn.send_query_prepared(
        _STORE_EVENT_STATEMENT, params, param_formats=[_BINARY, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT]
    )
    return conn.wait(psycopg.generators.execute(pgconn))[-1]


def _check(result: psycopg.pq.abc.PGresult, conn: psycopg.Connection, expected: int) -> None:
    if result.status != expected:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def process_event(event_id: int, *, force: bool = False) -> WebhookEvent | None:
    """Apply one stored event. Idempotent: a second run finds every wamid already stored.

    The event row stays locked while it is applied, so a replay and a queued task never apply
    the same event at once; ``force`` reprocesses flagged or finished events (replay)."""
    with events.batched(), transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None or not event.signature_valid:
            return event
        if not force and event.state not in (
            WebhookEvent.State.PENDING,
            WebhookEvent.State.QUEUED,
            WebhookEvent.State.FAILED,
        ):
            return event
        try:
            report = process_body(bytes(event.body), event_id=event.pk, received=event.received)
        except Exception as exc:  # a bug in intake: keep the event and retry it later
            logger.exception("webhook event %s failed", event.pk)
            report = Report(errors=[f"{type(exc).__name__}: {exc}"])
        now = timezone.now()
        event.attempts += 1
        event.processed = now
        event.inbox = report.inbox or event.inbox
        event.fields = ",".join(sorted(report.fields))[:300]
        summary = f"{report.created} new, {report.duplicates} duplicate, {report.statuses} statuses"
        event.notes = "\n".join([summary, *report.flags, *report.notes])
        if report.errors:
            event.state = WebhookEvent.State.FAILED
            event.last_error = "\n".join(report.errors)[:10000]
            event.next_attempt = now + retry_delay(event.attempts)
        elif report.flags:
            event.state = WebhookEvent.State.FLAGGED
            event.last_error = ""
            logger.warning("webhook event %s flagged: %s", event.pk, "; ".join(report.flags))
        else:
            event.state = WebhookEvent.State.DONE
            event.last_error = ""
        event.save(
            update_fields=["attempts", "processed", "inbox", "fields", "notes", "state", "last_error", "next_attempt"]
        )
        return event
