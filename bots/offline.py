"""The offline bot: no language model, the embedded default.

It answers from the knowledge base by keyword and fuzzy match (``bots.knowledge``), offers a
menu (reply buttons or a list: the knowledge base's menu topics and "talk to an attendant"),
and hands off by the rules of ``bots.intents``. One turn, in order:

1. a tapped menu option: "human" hands off, "kb:<id>" answers that entry, "menu" shows the menu;
2. the handoff rules (a request for a person, a complaint, a money dispute...);
3. a voice note it cannot hear: say so and offer a person;
4. a greeting: the bot's greeting and the menu; thanks: a short "you're welcome";
5. a question: the best knowledge entry's answer, or, when nothing answers it well enough,
   "I did not understand" and the menu.

Customer-facing text is English source in gettext; the pipeline renders the decision in the
business's language (``translation.override``). The words it recognises are Portuguese data.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext

from bots import intents, knowledge
from bots.models import BotConfig, BotRun, KnowledgeEntry
from bots.turn import Decision, HandoffRequest, Line, Menu, MenuOption, Turn
from handoffs.models import Handoff

ENGINE = BotRun.Engine.OFFLINE
HUMAN_CHOICE = "human"
MENU_CHOICE = "menu"
KNOWLEDGE_PREFIX = "kb:"

# WhatsApp's limits: 3 reply buttons of 20 characters; a list of 10 rows, titles of 24
# characters and descriptions of 72, a button label of 20.
MAX_BUTTON_TOPICS = 2
BUTTON_TITLE_MAX = 20
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
LIST_BUTTON_MAX = 20


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


GREETING_WORDS = _words(
    "oi oie oii ola olaa ei opa eai e ai salve hey hi hello alo bom boa dia tarde noite tudo bem td bom como vai "
    "voce voces beleza good morning afternoon evening there pessoal gente tardes noites dias tranquilo prazer"
)
THANKS_WORDS = _words(
    "obrigado obrigadao agradeco agradecida agradecido grato grata valeu thanks thank thx muito mto mt you so "
    "much demais por tudo ajuda a o pela pelo informacao informacoes atencao atendimento retorno resposta viu "
    "gratidao deus abencoe tmj tchau ate mais logo bjs beijos abraco abracos"
)
ACK_WORDS = _words("ok okay okk blz beleza certo entendi show perfeito top otimo legal combinado fechado sim")
THANKS_EMOJI = ("👍", "🙏", "❤", "😘", "🥰", "👏", "😊")


def decide(turn: Turn) -> Decision:
    config = turn.config
    last = turn.new[-1] if turn.new else None
    if last is not None and last.choice_id:
        chosen = _chosen(config, last)
        if chosen is not None:
            return chosen
    text = turn.text
    request = intents.detect(text, config) if text else None
    if request is not None:
        return Decision(engine=ENGINE, handoff=request)
    if not text:
        if any(line.unheard_audio for line in turn.new):
            return unheard_audio()
        return Decision(engine=ENGINE, reply=gettext("How can I help you?"), menu=build_menu(config))
    if _again_confused(turn):
        return Decision(
            engine=ENGINE,
            handoff=HandoffRequest(
                reason=Handoff.Reason.FRUSTRATION, priority=Handoff.Priority.NORMAL, detail="repeated confusion"
            ),
        )
    words = intents.tokens(intents.fold(_clipped(text, intents.MAX_CHARS)))
    rest = _after_greeting(words)
    if not rest and words:
        return Decision(engine=ENGINE, reply=greeting(config), menu=build_menu(config))
    if _only(rest, THANKS_WORDS | ACK_WORDS) or (not words and any(e in text for e in THANKS_EMOJI)):
        if set(rest) & THANKS_WORDS or not words:
            reply = gettext("You're welcome! If you need anything else, just send a message.")
        else:
            reply = gettext("All right! If you need anything else, just send a message.")
        return Decision(engine=ENGINE, reply=reply)
    question = " ".join(rest)
    if not knowledge.words(question):
        # "Oi, queria uma informação": nothing to look up yet.
        opening = greeting(config) if len(rest) < len(words) else gettext("How can I help you?")
        return Decision(engine=ENGINE, reply=opening, menu=build_menu(config))
    found = knowledge.scored(config, question)
    if found:
        entry = found[0][1]
        return Decision(engine=ENGINE, reply=entry.body, knowledge=[_used(entry)])
    return not_understood(config)


# --- Pieces the decision is made of ---------------------------------------------------------------


def human_option() -> MenuOption:
    return MenuOption(id=HUMAN_CHOICE, title=gettext("Talk to an attendant"))


def greeting(config: BotConfig) -> str:
    if config.greeting.strip():
        return config.greeting.strip()
    business = config.business_name.strip()
    if business:
        return gettext("Hello! I am %(bot)s, the virtual assistant of %(business)s. How can I help you?") % {
            "bot": config.name,
            "business": business,
        }
    return gettext("Hello! I am %(bot)s, a virtual assistant. How can I help you?") % {"bot": config.name}


def not_understood(config: BotConfig) -> Decision:
    return Decision(
        engine=ENGINE,
        reply=gettext("Sorry, I did not understand."),
        menu=build_menu(config, gettext("Choose one of the topics below, or talk to an attendant.")),
    )


def unheard_audio() -> Decision:
    return Decision(
        engine=ENGINE,
        reply=gettext("Sorry, I cannot listen to audio messages. Could you write your question?"),
        menu=Menu(body=gettext("Or, if you prefer, a person from our team can help you."), options=[human_option()]),
    )


def build_menu(config: BotConfig, body: str = "") -> Menu:
    """Reply buttons for at most two topics plus "talk to an attendant"; a list otherwise."""
    body = body or gettext("Choose an option:")
    topics = list(
        KnowledgeEntry.objects.filter(bot=config, active=True, in_menu=True).order_by("position", "id")[
            : LIST_ROWS_MAX - 1
        ]
        if config.pk
        else []
    )
    if len(topics) <= MAX_BUTTON_TOPICS:
        options = [MenuOption(id=_choice(entry), title=_clip(entry.title, BUTTON_TITLE_MAX)) for entry in topics]
        return Menu(body=body, options=[*options, human_option()])
    rows = [
        MenuOption(
            id=_choice(entry), title=_clip(entry.title, ROW_TITLE_MAX), description=_describe(entry, ROW_TITLE_MAX)
        )
        for entry in topics
    ]
    human = MenuOption(
        id=HUMAN_CHOICE,
        title=_clip(gettext("Talk to an attendant"), ROW_TITLE_MAX),
        description=_clip(gettext("A person from our team will answer you"), ROW_DESCRIPTION_MAX),
    )
    return Menu(body=body, options=[*rows, human], button=_clip(gettext("See options"), LIST_BUTTON_MAX))


def _chosen(config: BotConfig, line: Line) -> Decision | None:
    """A tapped button or list row; None for a choice this bot did not offer."""
    choice = line.choice_id
    if choice == HUMAN_CHOICE:
        return Decision(
            engine=ENGINE,
            handoff=HandoffRequest(reason=Handoff.Reason.CUSTOMER_REQUEST, priority=Handoff.Priority.NORMAL),
        )
    if choice == MENU_CHOICE:
        return Decision(engine=ENGINE, menu=build_menu(config))
    if choice.startswith(KNOWLEDGE_PREFIX):
        entry_id = choice.removeprefix(KNOWLEDGE_PREFIX)
        entry = None
        if entry_id.isdigit() and config.pk:
            entry = KnowledgeEntry.objects.filter(bot=config, active=True, pk=int(entry_id)).first()
        if entry is None:
            return Decision(
                engine=ENGINE,
                reply=gettext("Sorry, that option is no longer available."),
                menu=build_menu(config),
            )
        return Decision(engine=ENGINE, reply=entry.body, knowledge=[_used(entry)])
    return None


def _again_confused(turn: Turn) -> bool:
    """ "Não entendi" after an earlier "não é isso": the customer is going round in circles."""
    if not intents.confused(turn.text):
        return False
    earlier = [line for line in turn.history if line.role == "customer" and not _is_new(line, turn)]
    return any(line.text and intents.confused(line.text) for line in earlier[-3:])


def _is_new(line: Line, turn: Turn) -> bool:
    if line.message_id is not None:
        return any(line.message_id == new.message_id for new in turn.new)
    return any(line is new for new in turn.new)


def _after_greeting(words: list[str]) -> list[str]:
    index = 0
    while index < len(words) and _squeezed(words[index]) in GREETING_WORDS:
        index += 1
    return words[index:]


def _squeezed(word: str) -> str:
    return word if word in GREETING_WORDS else re.sub(r"([a-z])\1+", r"\1", word)


def _clipped(text: str, size: int) -> str:
    """At most ``size`` characters, cut between words: a pasted page is read as its start."""
    return text if len(text) <= size else text[:size].rsplit(None, 1)[0]


def _only(words: list[str], allowed: frozenset[str]) -> bool:
    return bool(words) and all(word in allowed for word in words)


def _choice(entry: KnowledgeEntry) -> str:
    return f"{KNOWLEDGE_PREFIX}{entry.pk}"


def _clip(text: str, size: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


def _describe(entry: KnowledgeEntry, title_max: int) -> str:
    """The whole title when the row had to cut it, else the answer's first sentence."""
    title = " ".join(entry.title.split())
    if len(title) > title_max:
        return _clip(title, ROW_DESCRIPTION_MAX)
    first = re.split(r"(?<=[.!?:])\s", " ".join(entry.body.split()), maxsplit=1)[0]
    return _clip(first, ROW_DESCRIPTION_MAX)


def _used(entry: KnowledgeEntry) -> dict[str, Any]:
    return {"id": entry.pk, "title": entry.title}
