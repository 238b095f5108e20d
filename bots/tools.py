"""The tools the language model may call, in OpenAI's function format, and what each does.

A tool never writes to the database: it changes the turn's ``ToolContext`` (a handoff asked
for, lead fields, knowledge used) and the pipeline carries the decision out under the
conversation's lock. Whatever the model sends (wrong types, missing fields, bad JSON) is
answered with an error the model can read, never an exception.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bots import knowledge
from bots.hours import describe_hours
from bots.llm import ToolCall
from bots.models import BotConfig, KnowledgeEntry
from bots.prompt import ENTRY_CHARS, local_now
from bots.turn import HandoffRequest, Turn
from handoffs.models import Handoff

Reason = Handoff.Reason

# The reasons the model may give; the others (bot failure, phone app, bot off, too many turns,
# audio) are the pipeline's own.
MODEL_REASONS = (
    Reason.CUSTOMER_REQUEST,
    Reason.COMPLAINT,
    Reason.BILLING,
    Reason.CANCELLATION,
    Reason.EMERGENCY,
    Reason.FRUSTRATION,
    Reason.TOPIC,
    Reason.MODEL,
    Reason.OTHER,
)
# Words a model writes instead of a taxonomy value (it often ignores an enum), in English and
# Portuguese, accents folded.
REASON_WORDS = (
    (Reason.EMERGENCY, ("emergenc", "urgent", "dor forte", "sangr")),
    (Reason.BILLING, ("billing", "payment", "refund", "charge", "pagamento", "reembolso", "cobranc", "estorno")),
    (Reason.CANCELLATION, ("cancel",)),
    (Reason.COMPLAINT, ("complain", "reclama")),
    (Reason.FRUSTRATION, ("frustrat", "angry", "upset", "irritad", "bravo")),
    (Reason.CUSTOMER_REQUEST, ("human", "person", "agent", "attendant", "atendente", "pessoa", "request")),
    (Reason.TOPIC, ("topic", "assunto")),
)
PRIORITY_WORDS = {"low": 0, "baixa": 0, "normal": 1, "medium": 1, "media": 1, "high": 2, "alta": 2, "urgent": 3}
LEAD_FIELDS = ("name", "service", "preferred_day", "preferred_time", "source", "notes")
LEAD_VALUE_MAX = 300
SUMMARY_MAX = 2000
SEARCH_LIMIT = 3


DEFINITIONS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "handoff_to_human",
            "description": (
                "Hand the conversation to a person from the team: the customer asks for a person, is upset, "
                "disputes a payment, cancels, has an emergency, the subject is a handoff topic, or you cannot help."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "enum": [str(r) for r in MODEL_REASONS]},
                    "priority": {
                        "type": "integer",
                        "description": "0 low, 1 normal, 2 high, 3 urgent (emergencies).",
                        "minimum": 0,
                        "maximum": 3,
                    },
                    "summary": {
                        "type": "string",
                        "description": "For the person taking over: who, what they want, what was already said.",
                    },
                },
                "required": ["reason", "summary"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_knowledge",
            "description": "Search the business's knowledge base (FAQ and articles) for facts to answer with.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Words to search for, in Portuguese."}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "business_hours",
            "description": "The business hours, holidays, whether it is open now and when it opens next.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "record_lead",
            "description": "Record what the customer told us for the team: name, service, preferred day and time.",
            "parameters": {
                "type": "object",
                "properties": {
                    "fields": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "service": {"type": "string", "description": "Service or procedure wanted."},
                            "preferred_day": {"type": "string"},
                            "preferred_time": {"type": "string"},
                            "source": {"type": "string", "description": "How they found the business."},
                            "notes": {"type": "string"},
                        },
                    }
                },
                "required": ["fields"],
            },
        },
    },
]


@dataclass
class ToolContext:
    """What the tools of one turn decided, read by the engine into the ``Decision``."""

    config: BotConfig
    turn: Turn
    handoff: HandoffRequest | None = None
    lead: dict[str, str] = field(default_factory=dict)
    knowledge: list[dict[str, Any]] = field(default_factory=list)

    def used(self, entries: list[KnowledgeEntry]) -> None:
        seen = {item["id"] for item in self.knowledge}
        for entry in entries:
            if entry.pk not in seen:
                seen.add(entry.pk)
                self.knowledge.append({"id": entry.pk, "title": entry.title})


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def map_reason(value: Any) -> str:
    """The model's reason as a ``Handoff.Reason`` value (default: the model decided)."""
    if not isinstance(value, str) or not value.strip():
        return str(Reason.MODEL)
    text = _fold(value.strip()).replace("-", "_").replace(" ", "_")
    if text in {str(r) for r in MODEL_REASONS}:
        return text
    spaced = text.replace("_", " ")
    for reason, words in REASON_WORDS:
        if any(word in spaced for word in words):
            return str(reason)
    return str(Reason.MODEL)


def map_priority(value: Any) -> int:
    if isinstance(value, bool):
        return int(Handoff.Priority.NORMAL)
    if isinstance(value, int | float):
        return max(0, min(3, int(value)))
    if isinstance(value, str):
        text = _fold(value.strip())
        if text.isdigit():
            return max(0, min(3, int(text)))
        return PRIORITY_WORDS.get(text, int(Handoff.Priority.NORMAL))
    return int(Handoff.Priority.NORMAL)


def _text(value: Any, limit: int) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()[:limit]


# --- the tools ------------------------------------------------------------------------------


def handoff_to_human(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    reason = map_reason(arguments.get("reason"))
    priority = map_priority(arguments.get("priority", Handoff.Priority.NORMAL))
    if reason == Reason.EMERGENCY:
        priority = int(Handoff.Priority.URGENT)
    free_text = _text(arguments.get("reason"), 200)
    request = HandoffRequest(
        reason=reason,
        priority=priority,
        summary=_text(arguments.get("summary"), SUMMARY_MAX),
        detail=free_text if free_text != reason else "",
    )
    if ctx.handoff is not None:
        # Called twice: keep the more urgent request, and any summary.
        request.priority = max(request.priority, ctx.handoff.priority)
        request.summary = request.summary or ctx.handoff.summary
    ctx.handoff = request
    return {
        "ok": True,
        "reason": reason,
        "priority": request.priority,
        "next": "A person from the team will continue. Tell the customer so in one short sentence.",
    }


def search_knowledge(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    query = _text(arguments.get("query"), 300)
    if not query:
        return {"error": "query is required"}
    entries = list(knowledge.search(ctx.config, query, limit=SEARCH_LIMIT))
    ctx.used(entries)
    if not entries:
        return {"results": [], "note": "Nothing found. Do not invent an answer: say so or offer a person."}
    return {"results": [{"id": e.pk, "title": e.title, "text": e.body[:ENTRY_CHARS]} for e in entries]}


def business_hours(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    turn = ctx.turn
    opens_next = local_now(ctx.config, turn.opens_next).isoformat(timespec="minutes") if turn.opens_next else None
    return {
        "hours": describe_hours(ctx.config, turn.now),
        "open_now": turn.open_now,
        "opens_next": opens_next,
        "now": local_now(ctx.config, turn.now).isoformat(timespec="minutes"),
    }


def record_lead(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    # Models often send the fields flat instead of inside "fields": both are accepted.
    fields = arguments.get("fields") if isinstance(arguments.get("fields"), dict) else arguments
    recorded = {}
    for name in LEAD_FIELDS:
        value = _text(fields.get(name), LEAD_VALUE_MAX)
        if value:
            recorded[name] = value
    if not recorded:
        return {"error": f"no fields recorded; use: {', '.join(LEAD_FIELDS)}"}
    ctx.lead.update(recorded)
    return {"ok": True, "recorded": recorded}


TOOLS = {
    "handoff_to_human": handoff_to_human,
    "search_knowledge": search_knowledge,
    "business_hours": business_hours,
    "record_lead": record_lead,
}


def execute(ctx: ToolContext, call: ToolCall) -> dict[str, Any]:
    """Run one tool call; its result goes back to the model as JSON."""
    tool = TOOLS.get(call.name)
    if tool is None:
        return {"error": f"unknown tool {call.name!r}; the tools are {', '.join(TOOLS)}"}
    if not call.valid:
        return {"error": "the arguments were not a valid JSON object; call the tool again with valid JSON"}
    return tool(ctx, call.arguments)
