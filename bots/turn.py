"""The data a bot turn works with, shared by both engines (the offline bot and the language
model), the pipeline that runs them, and the "try the bot" page.

``Turn`` is what the bot reads; ``Decision`` is what it decided. Plain data: no queries, no
sends. The pipeline (``bots.pipeline``) builds the turn from the database and carries the
decision out under the conversation's row lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bots.models import BotConfig


@dataclass(frozen=True)
class Line:
    """One message of the conversation as the bot sees it (text, a caption, a transcript, the
    title of a tapped button). ``role`` is "customer", "bot", "attendant" or "system"."""

    role: str
    text: str
    message_id: int | None = None
    # The message's type ("text", "audio", "interactive", ...) and, for a tapped button or
    # list row, its id (the offline menu's "human" button, a knowledge entry's id).
    type: str = "text"
    choice_id: str = ""
    # An audio the bot could not understand (no transcription configured, or it failed).
    unheard_audio: bool = False
    # An image, video or document the customer sent without a caption: the bot cannot see it.
    unseen_media: bool = False
    when: datetime | None = None


@dataclass
class Turn:
    config: BotConfig
    # The conversation's recent lines, oldest first, up to and including ``new``.
    history: list[Line]
    # The customer's lines this turn answers (one or a burst), oldest first.
    new: list[Line]
    now: datetime
    conversation_id: int | None = None
    # Lead data recorded so far in this conversation.
    lead: dict[str, Any] = field(default_factory=dict)
    # Bot replies so far in this conversation (since opened or returned to the bot).
    turns: int = 0
    # Is the business open now (``bots.hours``), and when it opens next if not.
    open_now: bool = True
    opens_next: datetime | None = None

    @property
    def text(self) -> str:
        """The new lines as one text, the way the customer meant them."""
        return "\n".join(line.text for line in self.new if line.text).strip()


@dataclass(frozen=True)
class MenuOption:
    id: str
    title: str  # at most 20 characters for buttons, 24 for list rows
    description: str = ""  # list rows only, at most 72


@dataclass
class Menu:
    """An interactive message: up to 3 reply buttons, or a list of up to 10 rows."""

    body: str
    options: list[MenuOption]
    # A list's button label (at most 20 characters); empty: reply buttons.
    button: str = ""

    @property
    def is_list(self) -> bool:
        return bool(self.button)


@dataclass
class HandoffRequest:
    """Hand the conversation to a person. ``reason`` is a ``handoffs.models.Handoff.Reason``
    value, ``priority`` a ``Handoff.Priority`` value (0 low to 3 urgent)."""

    reason: str
    priority: int = 1
    summary: str = ""
    detail: str = ""


@dataclass
class Decision:
    """What the bot does this turn: send ``reply`` (text) and/or ``menu``, and/or hand off.
    A handoff with no reply is fine: the customer is then told by the queue notice."""

    engine: str  # BotRun.Engine value
    reply: str = ""
    menu: Menu | None = None
    handoff: HandoffRequest | None = None
    # Lead fields recorded this turn (merged into the conversation's lead).
    lead: dict[str, Any] = field(default_factory=dict)
    # What was used, for the turn's record and the "try the bot" page.
    knowledge: list[dict[str, Any]] = field(default_factory=list)  # [{"id": 3, "title": "..."}]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "arguments", "result"}]
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    llm_ms: int = 0
    # Why the engine failed, when it did (the decision is then the fallback: apologise and hand off).
    error: str = ""
