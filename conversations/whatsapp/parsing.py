"""Reading WhatsApp webhook payloads: pure functions, no database.

Meta's payloads vary by API version, by product (coexistence, groups, usernames) and by age,
so a shape we do not expect gives an empty value here, never an exception. What the values
mean for our rows is decided in ``intake`` (applying) and ``services`` (writing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conversations.models import MEDIA_TYPES, Inbox, Message


@dataclass
class Identity:
    wa_id: str = ""
    user_id: str = ""
    parent_user_id: str = ""
    name: str = ""
    username: str = ""

    def __bool__(self) -> bool:
        return bool(self.wa_id or self.user_id)


@dataclass
class NewMessage:
    """What intake knows about one inbound (or echoed) message before it is stored."""

    wamid: str
    type: str
    timestamp: datetime
    direction: str = Message.Direction.IN
    sender_kind: str = Message.SenderKind.CUSTOMER
    text: str = ""
    content: dict | None = None
    caption: str = ""
    media_id: str = ""
    media_mime: str = ""
    media_sha256: str = ""
    media_filename: str = ""
    context_wamid: str = ""
    forwarded: bool = False
    frequently_forwarded: bool = False
    referral: dict | None = None
    error_code: int | None = None
    error_title: str = ""
    error_details: str = ""
    raw: dict | None = None


@dataclass
class StatusUpdate:
    wamid: str
    status: str
    timestamp: datetime
    callback_data: str = ""
    errors: list | None = None
    pricing: dict | None = None
    data: dict | None = None


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
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


def contact_for(contacts: list[dict], wa_id: str, user_id: str) -> dict:
    """The contact block describing the sender. The only block stands in for a sender it does not
    name, but never for one it contradicts: its profile name would rename the sender."""
    for contact in contacts:
        if wa_id and as_str(contact.get("wa_id")) == wa_id:
            return contact
        if user_id and as_str(contact.get("user_id")) == user_id:
            return contact
    if len(contacts) != 1:
        return {}
    only = contacts[0]
    other_wa_id, other_user_id = as_str(only.get("wa_id")), as_str(only.get("user_id"))
    if (wa_id and other_wa_id and other_wa_id != wa_id) or (user_id and other_user_id and other_user_id != user_id):
        return {}
    return only


def identity_for(contact: dict, wa_id: str, user_id: str, parent_user_id: str = "") -> Identity:
    profile = as_dict(contact.get("profile"))
    return Identity(
        wa_id=wa_id or as_str(contact.get("wa_id")),
        user_id=user_id or as_str(contact.get("user_id")),
        parent_user_id=parent_user_id or as_str(contact.get("parent_user_id")),
        name=as_str(profile.get("name")),
        username=as_str(profile.get("username")),
    )


def build_message(inbox: Inbox, item: dict, received: datetime) -> NewMessage:
    """Map any inbound message type onto our columns, keeping its object whole in ``content``."""
    mtype = as_str(item.get("type")) or "unknown"
    wamid = as_str(item.get("id")) or synthetic_wamid(inbox.phone_number_id, item)
    body = item.get(mtype)
    content = dict(body) if isinstance(body, dict) else ({"value": body} if body is not None else {})
    context = as_dict(item.get("context"))
    new = NewMessage(
        wamid=wamid[:255],
        type=mtype,
        timestamp=parse_timestamp(item.get("timestamp"), received),
        content=content,
        context_wamid=as_str(context.get("id")),
        forwarded=bool(context.get("forwarded")),
        frequently_forwarded=bool(context.get("frequently_forwarded")),
        referral=as_dict(item.get("referral")) or None,
        raw=item,
    )
    if context.get("referred_product"):
        new.content = {**content, "referred_product": context["referred_product"]}

    if mtype == "text":
        new.text = as_str(content.get("body"))
    elif mtype in MEDIA_TYPES:
        _media_fields(new, content)
    elif mtype == "interactive":
        new.text = _interactive_text(content)
    elif mtype == "button":
        new.text = as_str(content.get("text")) or as_str(content.get("payload"))
    elif mtype == "order":
        new.text = as_str(content.get("text"))
    elif mtype == "system":
        new.text = as_str(content.get("body"))
        new.sender_kind = Message.SenderKind.SYSTEM
    elif mtype == "location":
        new.text = ", ".join(p for p in (as_str(content.get("name")), as_str(content.get("address"))) if p)
    elif mtype == "contacts":
        names = [as_str(as_dict(c.get("name")).get("formatted_name")) for c in as_list(body) if isinstance(c, dict)]
        new.content = {"contacts": as_list(body)}
        new.text = ", ".join(n for n in names if n)
    elif mtype == "edit":
        edited = as_dict(content.get("message"))
        inner_type = as_str(edited.get("type"))
        inner = as_dict(edited.get(inner_type))
        new.text = as_str(inner.get("body")) if inner_type == "text" else ""
        new.caption = as_str(inner.get("caption"))

    errors = [e for e in as_list(item.get("errors")) if isinstance(e, dict)]
    if errors:
        error = errors[0]
        try:
            new.error_code = int(error.get("code")) if error.get("code") is not None else None
        except (TypeError, ValueError):
            new.error_code = None
        new.error_title = as_str(error.get("title")) or as_str(error.get("message"))
        new.error_details = as_str(as_dict(error.get("error_data")).get("details")) or as_str(error.get("details"))
        if mtype in MEDIA_TYPES:
            # Meta could not fetch the customer's file (131052 and friends): nothing to download.
            new.media_id = ""
    return new


def _media_fields(new: NewMessage, content: dict) -> None:
    new.media_id = as_str(content.get("id"))
    new.media_mime = as_str(content.get("mime_type"))
    new.media_sha256 = as_str(content.get("sha256"))
    new.media_filename = as_str(content.get("filename"))
    new.caption = as_str(content.get("caption"))


def _interactive_text(content: dict) -> str:
    kind = as_str(content.get("type"))
    reply = as_dict(content.get(kind))
    if kind in ("button_reply", "list_reply"):
        return as_str(reply.get("title"))
    if kind == "nfm_reply":
        return as_str(reply.get("body")) or as_str(reply.get("name"))
    return as_str(reply.get("title")) or as_str(reply.get("body"))
