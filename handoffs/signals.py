"""What the handoffs app announces (the bot listens: it stops talking when a human takes over,
and starts again when a conversation is returned to it).

Sent after the transaction that made the change commits, with ids only. Receivers connect in
their ``AppConfig.ready()`` and must be idempotent.
"""

from __future__ import annotations

from django.dispatch import Signal

# A conversation changed owner or state: conversation_id, inbox_id, change_id (the
# OwnershipChange row), action, from_status, to_status, assignee_id, actor_id (None for the
# system).
ownership_changed = Signal()
