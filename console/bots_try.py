"""Console: "try the bot" (``/console/bots/try/``), for admins and supervisors.

The user writes as a customer would; every send runs the inbox's real bot pipeline on all the
lines so far as one conversation (``bots.trial.try_conversation``: inside a transaction that
is rolled back, so nothing is stored and nothing is sent) and shows, for each line, the bot's
reply and menu, whether it handed off and why, the knowledge entries it used, its tool calls,
tokens, cost and latency.

The page keeps no state on the server: the lines so far travel in the form as hidden fields,
so a reload, a second tab or no JavaScript at all work alike. With htmx the form swaps only
the chat (``console/bots_try.html#chat``); without it, the whole page comes back.

Who: admins (any inbox) and the supervisors of an inbox (theirs). An attendant gets 403; an
inbox id the user does not supervise is a 404, like any object they may not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from bots.models import BotRun
from conversations import access
from conversations.models import Conversation, Inbox
from handoffs.models import Handoff

TEMPLATE = "console/bots_try.html"
# A trial runs the pipeline once per line, with a model this can cost money and time: a long
# chat starts over rather than growing without bound.
MAX_LINES = 12
MAX_CHARS = 1000


def tryable_inboxes(user: Any) -> Any:
    """The inboxes whose bot this user may try: every inbox for an admin, the supervised ones
    for a supervisor, none for anyone else."""
    if access.is_admin(user):
        return Inbox.objects.order_by("name", "pk")
    return Inbox.objects.filter(pk__in=access.supervised_inbox_ids(user)).order_by("name", "pk")


def get_inbox_for_user(user: Any, raw: Any, inboxes: list[Inbox]) -> Inbox:
    """The inbox ``raw`` among ``inboxes`` (the user's), 404 otherwise (ids are not an oracle)."""
    try:
        pk = int(raw)
    except (TypeError, ValueError):
        raise Http404 from None
    for inbox in inboxes:
        if inbox.pk == pk:
            return inbox
    raise Http404


@dataclass
class Exchange:
    """One customer line and what the bot did with it (``bots.trial.TrialResult``), with the
    codes in it put in the reader's words."""

    text: str
    result: Any
    reason_label: str = ""
    engine_label: str = ""
    # The bot did not answer this line: an earlier line handed the conversation to people.
    with_people: bool = False


def _label(choices: Any, value: str) -> str:
    return str(choices(value).label) if value in choices.values else value


def _lines(request: HttpRequest) -> tuple[list[str], str | None]:
    """The lines so far (hidden fields) plus the new one; an error text when there is none or
    too many."""
    earlier = [line.strip()[:MAX_CHARS] for line in request.POST.getlist("line") if line.strip()]
    new = request.POST.get("text", "").strip()
    if not new:
        return earlier, gettext("Write something first.")
    if len(new) > MAX_CHARS:
        return earlier, gettext("At most %(count)d characters a line.") % {"count": MAX_CHARS}
    if len(earlier) >= MAX_LINES:
        return earlier, gettext("This trial is long enough: start over to try more.")
    return [*earlier, new], None


def run_trial(inbox: Inbox, texts: list[str]) -> list[Exchange]:
    from bots import trial

    return [
        Exchange(
            text=text,
            result=result,
            reason_label=_label(Handoff.Reason, result.reason) if result.reason else "",
            engine_label=_label(BotRun.Engine, result.engine) if result.engine else "",
            with_people=not result.outcome and result.status != Conversation.Status.BOT,
        )
        for text, result in zip(texts, trial.try_conversation(inbox, texts), strict=False)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def try_bot(request: HttpRequest) -> HttpResponse:
    inboxes = list(tryable_inboxes(request.user))
    if not inboxes:
        raise PermissionDenied(gettext("Only admins and supervisors may try the bot."))
    raw = request.POST.get("inbox") if request.method == "POST" else request.GET.get("inbox")
    inbox = get_inbox_for_user(request.user, raw, inboxes) if raw else inboxes[0]
    context: dict[str, Any] = {
        "inboxes": inboxes,
        "inbox": inbox,
        "exchanges": [],
        "lines": [],
        "error": "",
        "max_lines": MAX_LINES,
        "max_chars": MAX_CHARS,
    }
    if request.method == "POST":
        texts, error = _lines(request)
        if error:
            # The lines so far stay (as plain lines: running them again only to show the same
            # replies would cost another trial), and so does what was typed.
            context.update(error=error, lines=texts, draft=request.POST.get("text", "")[:MAX_CHARS])
        else:
            context.update(exchanges=run_trial(inbox, texts), lines=texts)
    template = f"{TEMPLATE}#chat" if request.htmx and request.method == "POST" else TEMPLATE
    return render(request, template, context)


urlpatterns: list[URLPattern] = [path("bots/try/", try_bot, name="try_bot")]
