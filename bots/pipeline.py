"""The reply pipeline: one bot turn on one conversation.

``run_turn`` claims the conversation's ``BotState`` lease (two workers never answer the same
messages), reads the customer's unanswered messages after ``handled_through``, waits for the
rest of a burst and for voice notes still downloading, transcribes audio when the bot has a
transcription model, shows the typing indicator, asks the engine (``bots.engine.decide``) and
then, in ONE transaction under the conversation's row lock, carries the decision out, unless a
person got there first: a conversation the bot no longer owns, or one where an attendant or
the phone app wrote since the bot got it, gets nothing from the bot (the turn is recorded as
dropped, and an echo pauses the bot by handing the conversation to people).

Sends are stored here and go out after commit (``conversations.outbound``), so the "try the bot"
page runs this very code inside a transaction it rolls back: nothing stored, nothing sent.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from bots import notices, services
from bots.models import BotConfig, BotRun, BotState
from bots.turn import Decision, HandoffRequest, Menu, Turn
from conversations import jobs, outbound
from conversations import services as conversation_services
from conversations.models import Conversation, Message
from conversations.querycache import CompiledQuery
from handoffs import services as handoff_services
from handoffs.models import Handoff, OwnershipChange

logger = logging.getLogger(__name__)

REPLY_TASK = "bots.tasks.reply"
# A re-scheduled burst runs a little after its quiet moment, so it finds the burst quiet.
BURST_SLACK_SECONDS = 0.2

Outcome = BotRun.Outcome


@dataclass
class TurnResult:
    """What a turn did: its record, the decision it carried out, and the rows it sent (for the
    "try the bot" page, which reads them before rolling everything back)."""

    run: BotRun
    decision: Decision
    sent: list[Message]
    # The cursor as the turn left it: what comes after it is still unanswered.
    handled_through: int = 0


# --- The unanswered messages --------------------------------------------------------------------


def unanswered(conversation_id: int, after: int) -> Any:
    """The customer's messages the bot still owes an answer or a decision, oldest first.
    Reactions, edits and deletions act on another message and are never answered."""
    return (
        Message.objects.filter(
            conversation_id=conversation_id,
            direction=Message.Direction.IN,
            sender_kind=Message.SenderKind.CUSTOMER,
            id__gt=after,
        )
        .exclude(type__in=services.SKIPPED_TYPES)
        .order_by("id")
    )


# A turn's first reads, compiled once per process (conversations/querycache.py).
_UNANSWERED = CompiledQuery(unanswered, -987654321, -987654322)
_CONVERSATION = CompiledQuery(lambda pk: Conversation.objects.filter(pk=pk).order_by(), -987654321)
# _finish's locks, in this order (the conversation, then its bot state).
_LOCKED_CONVERSATION = CompiledQuery(
    lambda pk: Conversation.objects.select_for_update(of=("self",)).filter(pk=pk).order_by(), -987654321
)
_LOCKED_STATE = CompiledQuery(lambda pk: BotState.objects.select_for_update().filter(pk=pk).order_by(), -987654321)


# --- The lease ----------------------------------------------------------------------------------


def _claim(conversation_id: int, now: datetime) -> BotState | None:
    """Take the conversation's lease (the state comes back with its ``lease_token``), or None
    while another live turn holds it. A lease past its time belongs to a worker that died (or
    hangs): taken over. One statement: the state is created with the lease on the
    conversation's first turn, or updated only where no live lease holds it."""
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=settings.BOT_LEASE_SECONDS)
    at = connection.ops.adapt_datetimefield_value
    claimed = list(BotState.objects.raw(_CLAIM_SQL, [conversation_id, at(until), token, at(now), at(now)]))
    return claimed[0] if claimed else None


# bots_botstate is BotState's table. SQLite (3.35+) and PostgreSQL both take this statement.
_CLAIM_SQL = """
    INSERT INTO bots_botstate
        (conversation_id, handled_through, turns, lease_until, lease_token, out_of_hours_notified, updated)
    VALUES (%s, 0, 0, %s, %s, NULL, %s)
    ON CONFLICT (conversation_id) DO UPDATE
        SET lease_until = excluded.lease_until, lease_token = excluded.lease_token, updated = excluded.updated
        WHERE bots_botstate.lease_token = ''
            OR bots_botstate.lease_until IS NULL
            OR bots_botstate.lease_until <= %s
    RETURNING conversation_id, handled_through, turns, lease_until, lease_token, out_of_hours_notified, updated
"""


def _release(conversation_id: int, token: str) -> None:
    BotState.objects.filter(pk=conversation_id, lease_token=token).update(
        lease_token="", lease_until=None, updated=timezone.now()
    )


# --- Voice notes ----------------------------------------------------------------------------


def _transcribe(config: BotConfig, messages: list[Message]) -> None:
    """Transcribe the turn's voice notes (the transcript is stored on the message and shown in
    the console). A failure leaves the audio unheard: the engine then offers a person."""
    from bots import llm

    for message in messages:
        if message.type != "audio" or message.transcript or message.media_status != Message.MediaStatus.DONE:
            continue
        try:
            with message.media.open("rb") as handle:
                data = handle.read()
            text = llm.transcribe(config, data, message.media.name.rsplit("/", 1)[-1], message.media_mime)
        except llm.LLMError as exc:
            logger.warning("bot: transcription of message %s failed: %s", message.pk, exc.kind)
            continue
        except OSError as exc:
            logger.warning("bot: audio of message %s unreadable: %s", message.pk, exc)
            continue
        text = (text or "").strip()
        if text:
            conversation_services.set_transcript(message, text)


def _waits_for_audio(config: BotConfig, messages: list[Message]) -> bool:
    """A voice note still downloading is waited for when the bot could transcribe it; the
    ``media_ready`` receiver runs the turn again when the download ends (the sweep if that is
    lost). Without transcription there is nothing to wait for: the bot cannot listen anyway."""
    if not config.transcription_model:
        return False
    return any(m.type == "audio" and _downloading(m) for m in messages)


def _downloading(message: Message) -> bool:
    """Still on its way: pending, or failed with automatic attempts left (``conversations.media``
    announces ``media_ready`` with ok=False only once it gives up)."""
    if message.media_status == Message.MediaStatus.PENDING:
        return True
    return (
        message.media_status == Message.MediaStatus.FAILED
        and message.media_attempts < settings.WHATSAPP_MEDIA_MAX_ATTEMPTS
    )


# --- Who wrote since the bot got the conversation ---------------------------------------------


def _bot_owner_since(conversation: Conversation) -> datetime:
    """When the bot last got this conversation: opened, returned to the bot, or reopened."""
    since = conversation.opened
    changed = (
        OwnershipChange.objects.filter(conversation=conversation, to_status=Conversation.Status.BOT)
        .order_by("-created")
        .values_list("created", flat=True)
        .first()
    )
    reopened = (
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.INTERNAL, content__action="reopen_by_customer"
        )
        .order_by("-id")
        .values_list("created", flat=True)
        .first()
    )
    return max(t for t in (since, changed, reopened) if t is not None)


def _person_wrote(conversation: Conversation) -> str:
    """ "phone_app" or "attendant" when a person wrote to the customer since the bot got the
    conversation, else "". One query when no person ever wrote in it (most conversations)."""
    written = list(
        Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.OUT,
            sender_kind__in=[Message.SenderKind.ATTENDANT, Message.SenderKind.PHONE_APP],
        ).values_list("sender_kind", "created")
    )
    if not written:
        return ""
    since = _bot_owner_since(conversation)
    kinds = {kind for kind, created in written if created >= since}
    if Message.SenderKind.PHONE_APP in kinds:
        return Message.SenderKind.PHONE_APP
    return Message.SenderKind.ATTENDANT if kinds else ""


# --- Sending ----------------------------------------------------------------------------------


def _send(conversation: Conversation, decision: Decision) -> list[Message]:
    sent = []
    if decision.reply.strip():
        sent.append(outbound.send_text(conversation, decision.reply.strip()[: outbound.TEXT_MAX], sender_kind=_BOT))
    if decision.menu is not None and decision.menu.options:
        sent.append(_send_menu(conversation, decision.menu))
    return sent


_BOT = Message.SenderKind.BOT


def _send_menu(conversation: Conversation, menu: Menu) -> Message:
    body = menu.body.strip()[: outbound.INTERACTIVE_BODY_MAX] or "…"
    if menu.is_list:
        rows = []
        for option in menu.options[: outbound.LIST_ROWS_MAX]:
            row = {"id": option.id, "title": option.title[: outbound.LIST_ROW_TITLE_MAX]}
            if option.description:
                row["description"] = option.description[: outbound.LIST_ROW_DESCRIPTION_MAX]
            rows.append(row)
        return outbound.send_interactive_list(
            conversation, body, menu.button[: outbound.LIST_BUTTON_MAX], [{"rows": rows}], sender_kind=_BOT
        )
    buttons = [(o.id, o.title[: outbound.BUTTON_TITLE_MAX]) for o in menu.options[: outbound.BUTTONS_MAX]]
    return outbound.send_interactive_buttons(conversation, body, buttons, sender_kind=_BOT)


# --- The turn ---------------------------------------------------------------------------------


def run_turn(conversation_id: int, *, now: datetime | None = None) -> BotRun | None:
    """Answer the customer's unanswered messages in a conversation the bot owns. None when there
    was nothing to do now (not the bot's, another turn holds the lease, nothing unanswered, a
    burst still being typed, a voice note still downloading, closed and already told)."""
    result = run(conversation_id, now=now, wait_for_burst=not jobs.eager())
    return result.run if result is not None else None


def run(conversation_id: int, *, now: datetime | None = None, wait_for_burst: bool = False) -> TurnResult | None:
    started = time.monotonic()
    now = now or timezone.now()
    conversation = _CONVERSATION.one(conversation_id)
    if conversation is None or conversation.status != Conversation.Status.BOT:
        return None
    config = services.turn_config(conversation.inbox_id)
    state = _claim(conversation_id, now)
    if state is None:
        # Another turn is at work; it looks for messages that came in meanwhile when it ends.
        return None
    result = None
    # The reply goes to Meta from here once committed, with no hop through the sending queue.
    with outbound.delivered_here():
        try:
            result = _turn(conversation, config, state, now, started, wait_for_burst=wait_for_burst)
        finally:
            if result is None:
                # A recorded turn gave its lease back in the same transaction.
                _release(conversation_id, state.lease_token)
    if result is not None and result.run.outcome != Outcome.DROPPED and not _in_atomic():
        _follow_up(conversation_id, config, result.handled_through)
    return result


def _in_atomic() -> bool:
    return transaction.get_connection().in_atomic_block


def _follow_up(conversation_id: int, config: BotConfig, handled_through: int) -> None:
    """Lines the customer sent while this turn was thinking found the lease taken and gave up:
    answer them now (one more turn, which itself waits for the burst)."""
    if unanswered(conversation_id, handled_through).exists():
        jobs.enqueue(REPLY_TASK, conversation_id, countdown=config.burst_seconds)


def _turn(
    conversation: Conversation,
    config: BotConfig,
    state: BotState,
    now: datetime,
    started: float,
    *,
    wait_for_burst: bool,
) -> TurnResult | None:
    token = state.lease_token
    pending = _UNANSWERED(conversation.pk, state.handled_through)
    if not pending:
        return None
    newest = pending[-1]
    if wait_for_burst:
        quiet_for = (now - newest.created).total_seconds()
        if quiet_for < config.burst_seconds:
            # The customer is still typing: one reply for the whole burst, a moment later.
            jobs.enqueue(REPLY_TASK, conversation.pk, countdown=config.burst_seconds - quiet_for + BURST_SLACK_SECONDS)
            return None
    if not conversation.is_window_open(now):
        # Older than WhatsApp's 24-hour window (a sweep after a long outage): no reply could be
        # sent, so the engine (and a model's bill) is not asked.
        return _finish(conversation, token, newest, None, started)
    if not config.enabled:
        # The bot is off: people answer; the customer is told by the queue's notice.
        decision = Decision(engine=BotRun.Engine.OFFLINE, handoff=HandoffRequest(reason=Handoff.Reason.BOT_DISABLED))
        return _finish(conversation, token, newest, decision, started)
    if _waits_for_audio(config, pending):
        return None

    open_now, opens_next = notices.business_open(config, now)
    message_mode = config.out_of_hours == config.OutOfHours.MESSAGE
    if not open_now and message_mode:
        if state.out_of_hours_notified is not None:
            return None
        decision = Decision(engine=BotRun.Engine.OFFLINE)
        with translation.override(settings.LANGUAGE_CODE):
            decision.reply = notices.out_of_hours_text(config, opens_next, now)
        return _finish(conversation, token, newest, decision, started, out_of_hours=True)

    _typing(config, conversation, newest)
    if config.transcription_model:
        _transcribe(config, pending)
        pending = list(unanswered(conversation.pk, state.handled_through).filter(id__lte=newest.pk))

    new = services.lines_for(pending)
    if not new:
        # Stickers and the like: nothing the bot can answer.
        return _finish(conversation, token, newest, None, started)
    turn = Turn(
        config=config,
        history=services.history_lines(conversation.pk, newest.pk),
        new=new,
        now=now,
        conversation_id=conversation.pk,
        lead=services.lead_data(conversation.pk),
        turns=state.turns,
        open_now=open_now,
        opens_next=opens_next,
    )
    decision = decide(turn)
    return _finish(conversation, token, newest, decision, started)


def decide(turn: Turn) -> Decision:
    """The engine's decision, in the customer's language. The customer is never left without
    an answer: an engine that breaks becomes an apology and a handoff."""
    # Imported here: the engine pulls in the language model client, which the sweep, the
    # receivers and the out-of-hours path never need.
    from bots import engine

    with translation.override(settings.LANGUAGE_CODE):
        try:
            decision = engine.decide(turn)
        except Exception as exc:
            logger.exception("bot: engine failed on conversation %s", turn.conversation_id)
            decision = _failed(turn, f"{type(exc).__name__}: {exc}"[:1000])
        if not (decision.reply.strip() or decision.menu or decision.handoff):
            # An engine that decided nothing would leave the customer waiting forever.
            decision = _failed(turn, _join(decision.error, "the engine decided nothing"), usage=decision)
        if decision.handoff is not None and decision.handoff.reason not in Handoff.Reason.values:
            decision.handoff.detail = _join(decision.handoff.detail, decision.handoff.reason)[:1000]
            decision.handoff.reason = Handoff.Reason.MODEL if turn.config.uses_llm else Handoff.Reason.OTHER
        _ensure_audio_answered(turn, decision)
    return decision


def _failed(turn: Turn, error: str, *, usage: Decision | None = None) -> Decision:
    decision = Decision(
        engine=BotRun.Engine.LLM if turn.config.uses_llm else BotRun.Engine.OFFLINE,
        reply=gettext("Sorry, I could not answer that. A person from our team will help you shortly."),
        handoff=HandoffRequest(reason=Handoff.Reason.BOT_FAILURE, priority=Handoff.Priority.NORMAL),
        error=error,
    )
    if usage is not None:
        decision.engine, decision.model = usage.engine or decision.engine, usage.model
        decision.tokens_in, decision.tokens_out, decision.cost = usage.tokens_in, usage.tokens_out, usage.cost
        decision.llm_ms, decision.knowledge, decision.tool_calls = usage.llm_ms, usage.knowledge, usage.tool_calls
    return decision


def _ensure_audio_answered(turn: Turn, decision: Decision) -> None:
    """A voice note the bot cannot hear, and nothing else to go on: the customer is told and a
    person is offered. When the engine neither hands off nor offers a menu, hand off."""
    if turn.text or not any(line.unheard_audio for line in turn.new):
        return
    if not decision.reply.strip():
        decision.reply = gettext(
            "Sorry, I cannot listen to audio messages. Please write your question, or wait for a person from our team."
        )
    if decision.handoff is None and decision.menu is None:
        decision.handoff = HandoffRequest(reason=Handoff.Reason.AUDIO, priority=Handoff.Priority.NORMAL)


def _typing(config: BotConfig, conversation: Conversation, latest: Message) -> None:
    """WhatsApp's typing indicator while the bot thinks: nice, never needed. Sent from this
    process right away (``outbound.show_typing``), not queued behind other sends; the inbox
    came fresh with the configuration."""
    latest.conversation = conversation
    try:
        outbound.show_typing(latest, config.inbox)
    except Exception as exc:
        logger.info("bot: no typing indicator for message %s: %s", latest.pk, exc)


def _finish(
    conversation: Conversation,
    token: str,
    newest: Message,
    decision: Decision | None,
    started: float,
    *,
    out_of_hours: bool = False,
) -> TurnResult | None:
    """Carry the decision out in one transaction under the conversation's row lock."""
    sent: list[Message] = []
    with transaction.atomic():
        locked = _LOCKED_CONVERSATION(conversation.pk)[0]
        state = _LOCKED_STATE(conversation.pk)[0]
        if state.lease_token != token:
            # Our lease ran out and another turn took over: it answers these messages.
            return None
        run = BotRun(conversation=locked, trigger=newest, engine=BotRun.Engine.OFFLINE)
        if decision is None:
            decision = Decision(engine=BotRun.Engine.OFFLINE)
            run.outcome = Outcome.SKIPPED
        else:
            _copy_usage(run, decision)
        person = _person_wrote(locked) if locked.status == Conversation.Status.BOT else ""
        if locked.status != Conversation.Status.BOT or person:
            run.outcome = Outcome.DROPPED
            if person == Message.SenderKind.PHONE_APP:
                # Someone answers from the WhatsApp Business app: the bot steps aside for good.
                _request_handoff(locked, HandoffRequest(reason=Handoff.Reason.PHONE_APP), run)
        elif run.outcome != Outcome.SKIPPED:
            try:
                with translation.override(settings.LANGUAGE_CODE):
                    sent = _send(locked, decision)
            except outbound.SendRefused as exc:
                run.outcome = Outcome.FAILED
                run.error = _join(run.error, f"send refused ({exc.reason}): {exc}")
            else:
                run.outcome = Outcome.HANDOFF if decision.handoff else Outcome.REPLIED
            run.reply = sent[0] if sent else None
            if decision.lead:
                services.record_lead(locked, decision.lead)
            if sent:
                state.turns = min(state.turns + 1, 32767)
            if decision.handoff is not None:
                _request_handoff(locked, decision.handoff, run)
        if not out_of_hours:
            state.handled_through = max(state.handled_through, newest.pk)
            if state.out_of_hours_notified is not None and run.outcome != Outcome.DROPPED:
                state.out_of_hours_notified = None
        elif sent:
            state.out_of_hours_notified = timezone.now()
        # The lease is given back with the turn's outcome (the turn is over once this commits).
        state.lease_token, state.lease_until = "", None
        state.save(
            update_fields=["handled_through", "turns", "out_of_hours_notified", "lease_token", "lease_until", "updated"]
        )
        run.latency_ms = int((time.monotonic() - started) * 1000)
        run.save()
    return TurnResult(run=run, decision=decision, sent=sent, handled_through=state.handled_through)


def _copy_usage(run: BotRun, decision: Decision) -> None:
    run.engine = decision.engine or BotRun.Engine.OFFLINE
    run.model = decision.model[:120]
    run.tokens_in = max(0, int(decision.tokens_in or 0))
    run.tokens_out = max(0, int(decision.tokens_out or 0))
    run.cost = decision.cost or 0
    run.llm_ms = max(0, int(decision.llm_ms or 0))
    run.knowledge = list(decision.knowledge or [])
    run.tool_calls = list(decision.tool_calls or [])
    run.error = decision.error or ""


def _request_handoff(conversation: Conversation, request: HandoffRequest, run: BotRun) -> None:
    try:
        handoff_services.request_handoff(
            conversation,
            reason=request.reason,
            priority=request.priority,
            summary=request.summary,
            detail=request.detail,
            lead=services.lead_data(conversation.pk) or None,
        )
    except handoff_services.TransitionRefused as exc:
        run.error = _join(run.error, f"handoff refused: {exc}")


def _join(first: str, second: str) -> str:
    return f"{first}\n{second}" if first else second
