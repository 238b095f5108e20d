"""Helpers for the reply pipeline's tests: a customer writing (through intake, so the signals
and the eager reply task run as in production). Fixtures are in ``tests.bots.pipeline_support``."""

from __future__ import annotations

import itertools
from typing import Any

from django.db import transaction
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Inbox, Message
from conversations.whatsapp.parsing import Identity, NewMessage

CUSTOMER_WA_ID = "5511987654321"
_wamids = itertools.count(1)


def next_wamid() -> str:
    return f"wamid.PIPE{next(_wamids)}"


def say(inbox: Inbox, text: str = "", *, wa_id: str = CUSTOMER_WA_ID, **fields: Any) -> Message:
    """The customer's message through intake (committed: signals and the eager reply run)."""
    new = NewMessage(
        wamid=fields.pop("wamid", None) or next_wamid(),
        type=fields.pop("type", "text"),
        timestamp=fields.pop("timestamp", None) or timezone.now(),
        text=text,
        **fields,
    )
    with transaction.atomic():
        message, _created = services.record_message(inbox, Identity(wa_id=wa_id, name="Maria Silva"), new)
    return message


def echo(inbox: Inbox, text: str, *, wa_id: str = CUSTOMER_WA_ID) -> Message:
    """Someone at the business answers from the WhatsApp Business app (a coexistence echo)."""
    new = NewMessage(
        wamid=next_wamid(),
        type="text",
        timestamp=timezone.now(),
        text=text,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.PHONE_APP,
    )
    with transaction.atomic():
        message, _created = services.record_message(inbox, Identity(wa_id=wa_id), new)
    return message


def bot_messages(conversation: Conversation | int) -> list[Message]:
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    return list(
        Message.objects.filter(conversation_id=pk, direction=Message.Direction.OUT, sender_kind="bot").order_by("id")
    )


def register_bot_tasks() -> None:
    """Look the reply task up before ``broker_down()``: that fixture closes the Celery app, after
    which its lazy autodiscovery no longer finds task modules not imported yet."""
    from conversations import jobs

    jobs.task("bots.tasks.reply")
