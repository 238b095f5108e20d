"""The handoff packet's summary when the bot gave none (the offline bot, a failure): why, what
the customer said last, and what was collected. For attendants, in the business's language."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from conversations.models import Conversation, Message
from handoffs.models import Handoff

LAST_MESSAGES = 5
LINE_MAX = 300


def _words(message: Message) -> str:
    text = message.text or message.caption or message.transcript
    if not text and message.type == "interactive":
        reply = message.content.get("button_reply") or message.content.get("list_reply") or {}
        text = reply.get("title", "")
    if not text:
        text = f"[{message.type}]"
    text = " ".join(text.split())
    return text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "…"


def build(conversation: Conversation, *, reason: str, lead: dict[str, Any] | None = None) -> str:
    """A few lines: the reason, the customer's last messages (oldest first), the lead data."""
    recent = list(
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.IN, sender_kind=Message.SenderKind.CUSTOMER
        ).order_by("-wa_timestamp", "-id")[:LAST_MESSAGES]
    )
    with translation.override(settings.LANGUAGE_CODE):
        lines = [gettext("Reason: %(reason)s") % {"reason": Handoff.Reason(reason).label}]
        if recent:
            lines.append(gettext("The customer said:"))
            lines.extend(f"- {_words(message)}" for message in reversed(recent))
        if lead:
            lines.append(gettext("Collected:"))
            lines.extend(f"- {key}: {value}" for key, value in lead.items() if value not in (None, ""))
    return "\n".join(lines)
