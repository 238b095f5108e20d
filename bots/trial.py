"""Try an inbox's bot as a customer would, with nothing stored and nothing sent.

The customer's lines go through intake (``record_message``) and the reply pipeline
(``bots.pipeline``) exactly like WhatsApp's, inside a transaction that is rolled back at the
end: sends, read receipts, handoff assignment and live events all wait for a commit that never
comes. What the bot did (its reply, menu, handoff, knowledge, tool calls, tokens, cost and
latency) is read before the rollback. The language model, when the bot has one, is really
called: that is what is being tried.

Used by ``manage.py bot_try`` and the console's "try the bot" page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from bots import notices, pipeline
from bots.turn import Menu
from conversations import services as conversation_services
from conversations.models import Conversation, Inbox
from conversations.whatsapp.parsing import Identity, NewMessage


@dataclass
class TrialResult:
    text: str
    reply: str = ""
    menu: Menu | None = None
    handoff: bool = False
    # A ``handoffs.models.Handoff.Reason`` value, or "".
    reason: str = ""
    priority: int | None = None
    summary: str = ""
    lead: dict[str, Any] = field(default_factory=dict)
    knowledge: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    engine: str = ""
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: int = 0
    llm_ms: int = 0
    # BotRun outcome ("replied", "handoff", "failed"...), or "" when the bot did not answer (the
    # conversation was already with people after an earlier line's handoff).
    outcome: str = ""
    error: str = ""
    # Who owns the conversation after this line: "bot", "queued"...
    status: str = ""
    # After a handoff, what the queue tells the customer (a person is coming, their position,
    # or when people are back), as WhatsApp would send it after the commit.
    notice: str = ""

    def as_json(self) -> dict[str, Any]:
        """What ``bot_try`` prints: text, reply, handoff, reason. ``reply`` is what the customer
        reads: the bot's words, or the queue's notice when the bot handed over without any."""
        reply = self.reply or self.notice
        return {"text": self.text, "reply": reply, "handoff": self.handoff, "reason": self.reason}


class _Rollback(Exception):
    pass


def try_messages(inbox: Inbox, texts: list[str]) -> list[TrialResult]:
    """Each text is the first message of a fresh conversation with the inbox's bot."""
    return _trial(inbox, [[text] for text in texts])


def try_conversation(inbox: Inbox, texts: list[str]) -> list[TrialResult]:
    """The texts are one customer's successive lines in one conversation (each answered before
    the next is written, as on the try page)."""
    return _trial(inbox, [texts])


def _trial(inbox: Inbox, conversations: list[list[str]]) -> list[TrialResult]:
    results: list[TrialResult] = []
    try:
        with transaction.atomic():
            for texts in conversations:
                identity = _customer()
                for text in texts:
                    results.append(_one_line(inbox, identity, text))
            raise _Rollback
    except _Rollback:
        pass
    return results


def _customer() -> Identity:
    # A number no real customer has (rolled back anyway): a fresh customer, a fresh conversation.
    return Identity(wa_id=f"trial{uuid.uuid4().int % 10**12:012d}", name="Try the bot")


def _one_line(inbox: Inbox, identity: Identity, text: str) -> TrialResult:
    new = NewMessage(wamid=f"trial.{uuid.uuid4().hex}", type="text", timestamp=timezone.now(), text=text)
    message, _created = conversation_services.record_message(inbox, identity, new)
    result = TrialResult(text=text)
    turn = pipeline.run(message.conversation_id)
    if turn is not None:
        run, decision = turn.run, turn.decision
        result.reply = decision.reply
        result.menu = decision.menu
        result.handoff = decision.handoff is not None
        if decision.handoff is not None:
            result.reason = decision.handoff.reason
            result.priority = decision.handoff.priority
            result.summary = decision.handoff.summary
        result.lead = dict(decision.lead)
        result.knowledge = list(run.knowledge)
        result.tool_calls = list(run.tool_calls)
        result.engine = run.engine
        result.model = run.model
        result.tokens_in, result.tokens_out = run.tokens_in, run.tokens_out
        result.cost = Decimal(run.cost)
        result.latency_ms, result.llm_ms = run.latency_ms, run.llm_ms
        result.outcome = run.outcome
        result.error = run.error
    result.status = Conversation.objects.filter(pk=message.conversation_id).values_list("status", flat=True).first()
    if result.handoff and result.status == Conversation.Status.QUEUED:
        # Sent after the commit in production (a receiver of the ownership change): here, now.
        notice = notices.tell_waiting(message.conversation_id)
        result.notice = notice.text if notice is not None else ""
    return result
