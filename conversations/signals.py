"""What the conversations app announces. Other apps (handoffs, bots, lgpd, analytics) connect
receivers in their ``AppConfig.ready()``; ``conversations`` never imports them.

Every signal is sent after the transaction that made the change commits (a receiver never
sees a row that could still roll back) and carries ids only. A signal is sent once per
change: a replayed or duplicated webhook makes no new row and sends nothing. Receivers must
still be idempotent (a worker can die between the commit and the send, and the sweeps that
recover from that may announce again).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# A new inbound message from the customer: message_id, conversation_id, inbox_id, and the
# conversation's status and the message's type when it was stored (receivers that only care
# about some conversations or types decide without a query).
message_received = Signal()
# Someone at the business answered from the WhatsApp Business app on the phone:
# message_id, conversation_id, inbox_id, status, type.
echo_received = Signal()
# A conversation was opened by intake, or a closed one reopened by the customer's new message
# (``Inbox.reopen_hours``): conversation_id, inbox_id, customer_id, reopened.
conversation_opened = Signal()
# A message to the customer was stored and queued for sending (by an attendant, the bot or the
# system): message_id, conversation_id, inbox_id, sender_kind, sender_id.
outbound_stored = Signal()
# seed_demo created or refreshed the demo inbox (embedded mode): inbox_id. The bots app fills in
# the demo bot (business information and knowledge base) so the demo answers real questions.
demo_seeded = Signal()
# An inbound message's media download ended: downloaded (``ok=True``) or given up after its
# last automatic attempt (``ok=False``): message_id, conversation_id, inbox_id, ok.
media_ready = Signal()
# An outbound message's delivery status moved forward: message_id, conversation_id, status.
message_status_changed = Signal()


def send_on_commit(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction commits. A receiver's exception is logged and
    never reaches intake: the row is committed, and the receiver's own sweep recovers."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=None, **kwargs):
            if isinstance(result, Exception):
                logger.error("signal receiver %r failed: %r", receiver, result, exc_info=result)

    transaction.on_commit(send)
