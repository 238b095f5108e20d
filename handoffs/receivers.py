"""Receivers of conversations' signals for handoffs: when a person first answered, an echo from
the phone app pausing the bot, and the audit row of a reopen by the customer. Each is
idempotent (a signal may come twice, see ``conversations.signals``)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from conversations import signals
from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Handoff

logger = logging.getLogger(__name__)


@receiver(signals.outbound_stored, dispatch_uid="handoffs.first_answered")
def first_answered(sender: Any, *, conversation_id: int, sender_kind: str, message_id: int, **kwargs: Any) -> None:
    if sender_kind in (Message.SenderKind.ATTENDANT, Message.SenderKind.PHONE_APP):
        when = Message.objects.filter(pk=message_id).values_list("wa_timestamp", flat=True).first()
        services.mark_first_answered(conversation_id, when)


@receiver(signals.echo_received, dispatch_uid="handoffs.echo_pauses_bot")
def echo_pauses_bot(sender: Any, *, conversation_id: int, message_id: int, **kwargs: Any) -> None:
    """Someone at the business answered from the WhatsApp Business app: the bot stops talking
    over them (like a takeover: the conversation leaves the bot, with a handoff of reason
    phone_app that automatic assignment leaves alone), and that answer is the first one."""
    status = Conversation.objects.filter(pk=conversation_id).values_list("status", flat=True).first()
    if status in (Conversation.Status.BOT, Conversation.Status.QUEUED):
        try:
            services.request_handoff(conversation_id, reason=Handoff.Reason.PHONE_APP, actor=None)
        except services.TransitionRefused as refused:
            logger.info("echo on #%s: no handoff (%s)", conversation_id, refused.message)
    when = Message.objects.filter(pk=message_id).values_list("wa_timestamp", flat=True).first()
    services.mark_first_answered(conversation_id, when)


@receiver(signals.conversation_opened, dispatch_uid="handoffs.reopened_by_customer")
def reopened_by_customer(sender: Any, *, conversation_id: int, reopened: bool = False, **kwargs: Any) -> None:
    if reopened:
        services.record_reopen_by_customer(conversation_id)
