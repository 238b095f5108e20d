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

# A new inbound message from the customer: message_id, conversation_id, inbox_id.
message_received = Signal()
# Someone at the business answered from the WhatsApp Business app on the phone:
# message_id, conversation_id, inbox_id.
echo_received = Signal()
# A conversation was opened by intake: conversation_id, inbox_id, customer_id.
conversation_opened = Signal()
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
