"""The bot's decision for one turn, whichever engine answers.

1. The rule-based handoff triggers (``bots.intents``) come first, for both engines: a customer
   who asks for a person gets one, whatever a model would have said.
2. Too many bot replies: offer a person (once); after the offer, hand off.
3. With a provider configured: the language model with its tools, at most ``MAX_ROUNDS``
   calls. Any provider failure (an error, a timeout, a 429) becomes an apology and a handoff:
   the customer is never left without an answer.
4. Otherwise the offline bot.

Customer-facing text is English source in gettext; the caller renders it in the customer's
language (``translation.override``, see ``bots.pipeline.decide``).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext

from bots import intents, knowledge, llm, offline, prompt, tools
from bots.models import BotConfig, BotRun, ModelPrice
from bots.turn import Decision, HandoffRequest, Menu, MenuOption, Turn
from handoffs.models import Handoff

logger = logging.getLogger(__name__)

# Model calls per turn: a tool round trip or two (search, then answer; record a lead, hand
# off, then say so) and a margin, bounded so a looping model cannot run up a bill.
MAX_ROUNDS = 4
HUMAN_CHOICE = "human"
CENT_MILLIONTHS = Decimal("0.000001")


def decide(turn: Turn) -> Decision:
    config = turn.config
    engine = BotRun.Engine.LLM if config.uses_llm else BotRun.Engine.OFFLINE
    if any(line.choice_id == HUMAN_CHOICE for line in turn.new):
        # The menu's "talk to an attendant" button, in any language it was rendered in.
        return Decision(engine=engine, handoff=HandoffRequest(reason=Handoff.Reason.CUSTOMER_REQUEST))
    # What the customer typed: a tapped topic's title ("Política de cancelamento") is a choice
    # from our own menu, not a request to cancel.
    typed = "\n".join(line.text for line in turn.new if line.text and not line.choice_id).strip()
    request = intents.detect(typed, config) if typed else None
    if request is not None:
        return Decision(engine=engine, handoff=request)
    if not turn.text and any(line.unheard_audio for line in turn.new):
        return _unheard_audio(engine)
    if not turn.text and any(line.unseen_media for line in turn.new):
        return _unseen_media(engine)
    if config.max_turns and turn.turns >= config.max_turns:
        return _too_many_turns(turn, engine)
    if config.uses_llm:
        return _llm_decide(turn)
    return offline.decide(turn)


def human_option() -> MenuOption:
    return MenuOption(id=HUMAN_CHOICE, title=gettext("Talk to an attendant"))


def _unheard_audio(engine: str) -> Decision:
    return Decision(
        engine=engine,
        reply=gettext("Sorry, I cannot listen to audio messages. Could you write your question?"),
        menu=Menu(body=gettext("Or, if you prefer, a person from our team can help you."), options=[human_option()]),
    )


def _unseen_media(engine: str) -> Decision:
    """A photo or a file with no words: the bot cannot see it, so it asks for the words and
    offers a person (neither engine is asked, so no model is paid to guess)."""
    return Decision(
        engine=engine,
        reply=gettext(
            "Thanks, your file arrived, but I cannot see images or documents. Could you write what you need?"
        ),
        menu=Menu(body=gettext("Or, if you prefer, a person from our team can help you."), options=[human_option()]),
    )


def _too_many_turns(turn: Turn, engine: str) -> Decision:
    if turn.turns > turn.config.max_turns:
        # The person was offered and the customer kept going without resolution: hand off.
        return Decision(
            engine=engine,
            reply=gettext("I will pass your conversation to a person from our team, who will continue from here."),
            handoff=HandoffRequest(reason=Handoff.Reason.TOO_MANY_TURNS, detail=f"{turn.turns} bot replies"),
        )
    return Decision(
        engine=engine,
        reply=gettext("I may not be solving this for you as well as I would like."),
        menu=Menu(body=gettext("Would you like to talk to a person from our team?"), options=[human_option()]),
    )


# --- the language model ----------------------------------------------------------------------


def cost_of(config: BotConfig, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    """What the turn cost, from the configured model's price (or the name the provider
    answered with); 0 when no price is known."""
    names = [name for name in dict.fromkeys([config.model, model]) if name]
    prices = getattr(config, "loaded_prices", None)
    if prices is None:
        prices = {p.model: p for p in ModelPrice.objects.filter(model__in=names)}
    for name in names:
        if name in prices:
            return prices[name].cost(tokens_in, tokens_out).quantize(CENT_MILLIONTHS)
    return Decimal(0)


def _assistant_message(result: llm.ChatResult, calls: list[llm.ToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": result.text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                # Bad JSON is not sent back: some providers refuse a history that holds it.
                "function": {"name": call.name, "arguments": call.raw if call.valid and call.raw else "{}"},
            }
            for call in calls
        ],
    }


def _llm_decide(turn: Turn) -> Decision:
    config = turn.config
    decision = Decision(engine=BotRun.Engine.LLM, model=config.model)
    ctx = tools.ToolContext(config=config, turn=turn)
    entries = list(knowledge.search(config, turn.text, limit=3)) if turn.text else []
    ctx.used(entries)
    messages = prompt.build_messages(turn, entries)
    text = ""
    try:
        for _ in range(MAX_ROUNDS):
            result = llm.chat(config, messages, tools.DEFINITIONS)
            decision.tokens_in += result.tokens_in
            decision.tokens_out += result.tokens_out
            decision.llm_ms += result.ms
            decision.model = result.model or decision.model
            text = result.text or text
            if not result.tool_calls:
                break
            # Providers differ on tool call ids (some send none): ours pair calls and results.
            calls = [c if c.id else replace(c, id=f"call_{uuid.uuid4().hex[:12]}") for c in result.tool_calls]
            messages.append(_assistant_message(result, calls))
            for call in calls:
                outcome = tools.execute(ctx, call)
                decision.tool_calls.append(
                    {"name": call.name, "arguments": call.arguments if call.valid else call.raw, "result": outcome}
                )
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(outcome, ensure_ascii=False)}
                )
    except llm.LLMError as error:
        return _failure(decision, ctx, error.kind, str(error))
    finally:
        decision.lead = dict(ctx.lead)
        decision.knowledge = list(ctx.knowledge)
        decision.cost = cost_of(config, decision.model, decision.tokens_in, decision.tokens_out)
    decision.reply = text
    decision.handoff = ctx.handoff
    if not text and ctx.handoff is None:
        # Tool calls to the end, or an empty answer: the customer still gets one.
        return _failure(decision, ctx, "provider", f"no answer after {MAX_ROUNDS} model calls")
    return decision


def _failure(decision: Decision, ctx: tools.ToolContext, kind: str, message: str) -> Decision:
    logger.warning("bot: language model failed (%s) on conversation %s", kind, ctx.turn.conversation_id)
    decision.reply = gettext(
        "Sorry, I had a problem answering you. A person from our team will continue the conversation shortly."
    )
    decision.handoff = HandoffRequest(
        reason=Handoff.Reason.BOT_FAILURE,
        priority=max(Handoff.Priority.NORMAL, ctx.handoff.priority if ctx.handoff else 0),
        summary=ctx.handoff.summary if ctx.handoff else "",
        detail=kind,
    )
    decision.error = message[:1000]
    decision.lead = dict(ctx.lead)
    decision.knowledge = list(ctx.knowledge)
    return decision
