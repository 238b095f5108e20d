"""What the customer is told around a handoff, in the business's language (pt-BR): that a
person is coming, their place in the queue and an estimate (or, out of hours, when people are
back); a reminder when the wait runs long; and after a close, the rating question (CSAT) and a
thank-you for the answer.

Every notice is a system message sent through ``conversations.outbound`` under the
conversation's row lock, after checking the conversation is still where the notice makes sense
(queued, or closed for the rating): a notice never reaches a customer an attendant already
took. A refused send (the 24-hour window closed, the inbox paused) is logged, never raised: the
customer is not told, and nothing else fails.

Ratings: the rows' ids are ``csat:<handoff id>:<score>``. The answer arrives as a list reply
that intake keeps in the closed conversation (it reopens nothing, and the bot, which answers
only conversations it owns, stays quiet). A second answer to the same question replaces the
score (the customer changed their mind: the latest word is theirs); only the first is thanked.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from bots import hours
from bots.models import BotConfig, BusinessHours
from bots.services import config_for
from conversations import outbound, signals
from conversations.models import Conversation, Message
from handoffs import services as handoff_services
from handoffs.models import Handoff, OwnershipChange
from handoffs.signals import ownership_changed

logger = logging.getLogger(__name__)

Status = Conversation.Status
Action = OwnershipChange.Action

CSAT_ROW = re.compile(r"^csat:(\d+):([1-5])$")


# --- Words -------------------------------------------------------------------------------------


def _estimate_text(estimate: timedelta | None) -> str:
    if estimate is None:
        return ""
    minutes = max(1, round(estimate.total_seconds() / 60))
    if minutes < 60:
        return ngettext(
            "The estimated wait is about %(count)d minute.", "The estimated wait is about %(count)d minutes.", minutes
        ) % {"count": minutes}
    hours_ = round(minutes / 60)
    return ngettext(
        "The estimated wait is about %(count)d hour.", "The estimated wait is about %(count)d hours.", hours_
    ) % {"count": hours_}


def _position_text(position: int) -> str:
    if position <= 1:
        return gettext("You are next in line.")
    return gettext("You are number %(position)d in line.") % {"position": position}


def queue_text(position: int, estimate: timedelta | None, *, reminder: bool = False) -> str:
    if reminder:
        first = gettext("Thank you for waiting! A person from our team will answer you soon.")
    else:
        first = gettext("I'm passing you to a person from our team, who will answer you here shortly.")
    return " ".join(part for part in (first, _position_text(position), _estimate_text(estimate)) if part)


def _when(config: BotConfig, opens: datetime, now: datetime) -> str:
    local = opens.astimezone(hours.zone(config))
    today = now.astimezone(hours.zone(config)).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return gettext("today at %(time)s") % {"time": clock}
    if local.date() == today + timedelta(days=1):
        return gettext("tomorrow at %(time)s") % {"time": clock}
    day = str(BusinessHours.Weekday(local.weekday()).label)
    if local.date() - today >= timedelta(days=7):
        day = f"{day} ({local:%d/%m})"
    return gettext("%(day)s at %(time)s") % {"day": day, "time": clock}


def out_of_hours_text(config: BotConfig, opens: datetime | None, now: datetime) -> str:
    if config.out_of_hours_message.strip():
        return config.out_of_hours_message.strip()
    week = hours.describe_hours(config, brief=True)
    if opens is None:
        return gettext(
            "Our team is not at work right now (our hours: %(hours)s). A person will answer you here as soon "
            "as we are back."
        ) % {"hours": week}
    return gettext(
        "Our team is not at work right now (our hours: %(hours)s). We are back %(when)s, and a person will "
        "answer you here then."
    ) % {"hours": week, "when": _when(config, opens, now)}


def business_open(config: BotConfig, now: datetime) -> tuple[bool, datetime | None]:
    """Are people at work, and if not when are they back. Without hours configured there is no
    schedule to keep: always open (as the reply pipeline reads it)."""
    if not hours.has_hours(config):
        return True, None
    if hours.is_open(config, now):
        return True, None
    return False, hours.next_opening(config, now)


# --- The queue ---------------------------------------------------------------------------------


def _send(conversation: Conversation, send: Any) -> Message | None:
    try:
        # A savepoint: a refusal raised inside the send leaves the caller's transaction usable.
        with transaction.atomic():
            return send()
    except outbound.SendRefused as refused:
        logger.info("notice to conversation #%s not sent: %s (%s)", conversation.pk, refused, refused.reason)
        return None


def tell_waiting(conversation_id: int, *, reminder: bool = False) -> Message | None:
    """Tell a queued customer that a person is coming, with their position and an estimate, or
    out of hours when people are back. ``reminder``: only if they were last told more than
    HANDOFF_WAIT_NOTICE_MINUTES ago, and only while the business is open (at night the first
    message already said when people are back). Returns the message sent, or None."""
    conversation = Conversation.objects.filter(pk=conversation_id).only("inbox_id").first()
    if conversation is None:
        return None
    config = config_for(conversation.inbox_id)
    now = timezone.now()
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation_id)
        if locked.status != Status.QUEUED:
            return None
        handoff = Handoff.objects.select_for_update().filter(conversation=locked, closed__isnull=True).first()
        if handoff is not None and handoff.reason == Handoff.Reason.PHONE_APP:
            return None  # someone answers from the phone: nobody else is coming
        if reminder:
            cutoff = now - timedelta(minutes=settings.HANDOFF_WAIT_NOTICE_MINUTES)
            if handoff is None or handoff.notified is None or handoff.notified > cutoff:
                return None
        is_open, opens = business_open(config, now)
        if reminder and not is_open:
            return None
        with translation.override(settings.LANGUAGE_CODE):
            if is_open:
                position = handoff_services.queue_position(locked)
                estimate = handoff_services.wait_estimate(locked.inbox_id, position=position)
                text = queue_text(position, estimate, reminder=reminder)
            else:
                text = out_of_hours_text(config, opens, now)
        message = _send(locked, lambda: outbound.send_text(locked, text, sender_kind=Message.SenderKind.SYSTEM))
        if message is not None and handoff is not None:
            handoff.notified = now
            fields = ["notified", "updated"]
            if not is_open and not handoff.out_of_hours:
                handoff.out_of_hours = True
                fields.append("out_of_hours")
            handoff.save(update_fields=fields)
    return message


def send_wait_notices() -> int:
    """Beat's sweep: customers still queued whose last news is older than
    HANDOFF_WAIT_NOTICE_MINUTES (and whose 24-hour window is open) are told again. Returns how
    many were told."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.HANDOFF_WAIT_NOTICE_MINUTES)
    due = (
        Handoff.objects.filter(
            closed__isnull=True,
            notified__lte=cutoff,
            conversation__status=Status.QUEUED,
            conversation__last_inbound__gt=now - timedelta(hours=24),
        )
        .exclude(reason=Handoff.Reason.PHONE_APP)
        .order_by("notified")
        .values_list("conversation_id", flat=True)[:500]
    )
    told = 0
    for conversation_id in list(due):
        if tell_waiting(conversation_id, reminder=True) is not None:
            told += 1
    return told


# --- Rating (CSAT) -----------------------------------------------------------------------------


def ask_rating(conversation_id: int) -> Message | None:
    """After a close of a conversation that had a handoff: "How would you rate our service?" as
    a list of five rows (WhatsApp allows only three reply buttons), when the bot's ``csat`` is
    on and the 24-hour window is open. Once per handoff."""
    conversation = Conversation.objects.filter(pk=conversation_id).only("inbox_id").first()
    if conversation is None:
        return None
    config = config_for(conversation.inbox_id)
    if not config.csat:
        return None
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation_id)
        if locked.status != Status.CLOSED or locked.closed is None or not locked.is_window_open():
            return None
        handoff = (
            Handoff.objects.select_for_update()
            # The handoff this close ended (closed in the same transaction), not an older one.
            .filter(conversation=locked, closed__gte=locked.closed - timedelta(minutes=1))
            .order_by("-closed", "-id")
            .first()
        )
        if handoff is None or handoff.csat_asked is not None:
            return None
        with translation.override(settings.LANGUAGE_CODE):
            labels = {
                5: gettext("Excellent"),
                4: gettext("Good"),
                3: gettext("Okay"),
                2: gettext("Bad"),
                1: gettext("Very bad"),
            }
            rows = [
                {"id": f"csat:{handoff.pk}:{score}", "title": f"{score} – {label}"[:24]}
                for score, label in labels.items()
            ]
            body = gettext("How would you rate our service?")
            button = gettext("Rate")
            section = gettext("Your rating")
        message = _send(
            locked,
            lambda: outbound.send_interactive_list(
                locked, body, button, [{"title": section, "rows": rows}], sender_kind=Message.SenderKind.SYSTEM
            ),
        )
        if message is not None:
            handoff.csat_asked = timezone.now()
            handoff.save(update_fields=["csat_asked", "updated"])
    return message


def _csat_answer(message: Message) -> tuple[int, int] | None:
    if message.type != "interactive" or message.content.get("type") != "list_reply":
        return None
    match = CSAT_ROW.match(str((message.content.get("list_reply") or {}).get("id") or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def take_rating(message_id: int) -> bool:
    """Store a rating answer on its handoff and thank the customer (the first time), in the
    conversation where the answer was recorded. Returns whether a rating was stored."""
    message = Message.objects.filter(pk=message_id, direction=Message.Direction.IN).first()
    answer = _csat_answer(message) if message is not None else None
    if answer is None:
        return False
    handoff_id, score = answer
    # Only a handoff of this very conversation that was asked: a crafted id changes nothing.
    handoff = Handoff.objects.filter(
        pk=handoff_id, conversation_id=message.conversation_id, csat_asked__isnull=False
    ).first()
    if handoff is None:
        return False
    first = handoff_services.record_csat(handoff, score)
    if first:
        with translation.override(settings.LANGUAGE_CODE):
            text = gettext("Thank you for your rating!")
        conversation = message.conversation
        _send(conversation, lambda: outbound.send_text(conversation, text, sender_kind=Message.SenderKind.SYSTEM))
    return True


# --- Receivers ---------------------------------------------------------------------------------


@receiver(ownership_changed, dispatch_uid="bots.notices.ownership")
def on_ownership_changed(sender: Any, *, conversation_id: int, action: str, to_status: str, **kwargs: Any) -> None:
    if action == Action.CLOSE and to_status == Status.CLOSED:
        ask_rating(conversation_id)
    elif to_status == Status.QUEUED and action in (Action.HANDOFF, Action.TO_QUEUE):
        # tell_waiting skips a handoff of reason phone_app (the bot paused for the phone).
        tell_waiting(conversation_id)


@receiver(signals.message_received, dispatch_uid="bots.notices.rating")
def on_message_received(
    sender: Any, *, message_id: int, status: str | None = None, type: str = "", **kwargs: Any
) -> None:
    # A rating is a tapped list row recorded in the closed conversation that asked for it
    # (intake's answers in place): any other message needs no look.
    if status is not None and (status != Conversation.Status.CLOSED or type != "interactive"):
        return
    take_rating(message_id)
