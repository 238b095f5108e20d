"""Who owns a conversation: the state machine ``bot`` → ``queued`` → ``assigned`` → ``closed``.

Every change of owner or state goes through one function here (the console, the API, the bot,
the admin and the sweeps alike):

=======================  ==========================  ===========================================
transition               from                        who may (besides superusers and the system)
=======================  ==========================  ===========================================
take_over                bot, queued                 any member of the inbox (to themselves)
assign                   bot, queued, assigned       a supervisor of the inbox
transfer_to_attendant    assigned                    its attendant, a supervisor
transfer_to_queue        assigned / bot              its attendant, a supervisor / a supervisor
transfer_to_bot          assigned / queued           its attendant, a supervisor / a supervisor
close                    assigned / bot, queued      its attendant, a supervisor / a supervisor
reopen                   closed                      its last attendant, a supervisor
request_handoff          bot (→ queued)              the bot (the system), any member
=======================  ==========================  ===========================================

The new assignee of ``assign`` and ``transfer_to_attendant`` must be an active member of the
conversation's inbox. ``actor=None`` is the system (the bot handing off, automatic assignment,
sweeps): trusted, and recorded as such.

Each function locks the conversation row, checks the transition against the *locked* state
(so of two attendants clicking "take over" at once, the second sees the first one's result and
gets a clear refusal), writes through ``conversations.services.set_ownership`` (which publishes
the live event after commit), records an ``OwnershipChange`` and sends
``handoffs.signals.ownership_changed`` after commit. A refusal raises ``TransitionRefused``
and changes nothing.

A handoff (``request_handoff``) also writes a ``Handoff`` packet; the transitions keep its
timestamps in their own transaction (first assignment, close or return to the bot). Automatic
assignment (``assign_queue``) is queued after commit whenever the queue grows or someone has
room: a handoff, a close, a transfer, a return to the queue or the bot, someone going online.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext

from conversations import access, events, jobs, services
from conversations import signals as conversation_signals
from conversations.models import Conversation, Membership, Message
from handoffs import signals
from handoffs import summary as summaries
from handoffs.models import Attendant, Handoff, OwnershipChange

logger = logging.getLogger(__name__)

ASSIGN_QUEUE_TASK = "handoffs.tasks.assign_queue"

Status = Conversation.Status
Action = OwnershipChange.Action
Reason = Handoff.Reason

# After these, someone may have room or the queue has a new conversation: run automatic
# assignment for the inbox (after commit). Not after ``assign`` itself: automatic assignment
# assigns, and must not queue itself again for every conversation it gives.
_FREES_OR_QUEUES = frozenset({Action.CLOSE, Action.TRANSFER, Action.TO_QUEUE, Action.TO_BOT})

# Stands for "some assignee" when asking which actions are available, before one is picked.
_ANYONE = object()


class TransitionRefused(Exception):
    """This actor may not make this transition, or not from the conversation's current state.

    ``message`` is translated, for people; ``code`` is for programs: ``forbidden`` (not this
    actor: 403), ``conflict`` (not from this state, e.g. someone else took it first: 409) or
    ``invalid`` (a bad argument, such as an assignee outside the inbox: 400)."""

    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    INVALID = "invalid"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class _Actor:
    user: Any  # None for the system
    admin: bool
    role: str | None

    @property
    def system(self) -> bool:
        return self.user is None

    @property
    def manages(self) -> bool:
        """May act on anything in the inbox: the system, a superuser, a supervisor of it."""
        return self.system or self.admin or self.role == Membership.Role.SUPERVISOR

    def holds(self, conversation: Conversation) -> bool:
        """Is (or, when closed, was last) its attendant, and still a member of the inbox."""
        return self.user is not None and self.role is not None and conversation.assignee_id == self.user.pk

    @property
    def may_own(self) -> bool:
        return self.user is not None and (self.admin or self.role is not None)


@dataclass(frozen=True)
class _Target:
    status: str
    assignee: Any
    closed: Any


def _name(user: Any) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else gettext("the system")


def _actor(user: Any, inbox_id: int) -> _Actor:
    if user is None:
        return _Actor(user=None, admin=False, role=None)
    return _Actor(user=user, admin=access.is_admin(user), role=access.role_in(user, inbox_id))


def _forbidden(message: str) -> TransitionRefused:
    return TransitionRefused(message, TransitionRefused.FORBIDDEN)


def _conflict(message: str) -> TransitionRefused:
    return TransitionRefused(message, TransitionRefused.CONFLICT)


def _require_open(conversation: Conversation) -> None:
    if conversation.status == Status.CLOSED:
        raise _conflict(gettext("This conversation is closed: reopen it first."))


def _require_holder_or_manager(conversation: Conversation, actor: _Actor) -> None:
    if conversation.status == Status.ASSIGNED and actor.holds(conversation):
        return
    if not actor.manages:
        if conversation.status == Status.ASSIGNED:
            raise _forbidden(gettext("Only the attendant holding this conversation or a supervisor can do this."))
        raise _forbidden(gettext("Only a supervisor of this inbox can do this; take the conversation over first."))


def _check_assignee(conversation: Conversation, assignee: Any) -> None:
    if assignee is _ANYONE:
        return
    # Members only, superusers included: whom the queue, capacity and reports count.
    if assignee is None or access.role_in(assignee, conversation.inbox_id) is None:
        raise TransitionRefused(
            gettext("%(name)s is not an active member of this conversation's inbox.") % {"name": _name(assignee)},
            TransitionRefused.INVALID,
        )
    if conversation.status == Status.ASSIGNED and conversation.assignee_id == assignee.pk:
        raise _conflict(gettext("This conversation is already assigned to %(name)s.") % {"name": _name(assignee)})


# --- The rules, one per transition: (locked conversation, actor, assignee) -> target -----------


def _take_over(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    _require_open(conversation)
    if actor.user is None:
        raise _forbidden(gettext("Only a person can take a conversation over: assign it instead."))
    if conversation.status == Status.ASSIGNED:
        if conversation.assignee_id == actor.user.pk:
            raise _conflict(gettext("You already have this conversation."))
        raise _conflict(
            gettext("%(name)s has already taken this conversation over.") % {"name": _name(conversation.assignee)}
        )
    if not actor.may_own:
        raise _forbidden(gettext("You are not a member of this conversation's inbox."))
    return _Target(Status.ASSIGNED, actor.user, None)


def _assign(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    if not actor.manages:
        raise _forbidden(gettext("Only a supervisor of this inbox can assign conversations."))
    _require_open(conversation)
    _check_assignee(conversation, assignee)
    return _Target(Status.ASSIGNED, assignee, None)


def _transfer(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    _require_open(conversation)
    if conversation.status != Status.ASSIGNED:
        raise _conflict(gettext("Only a conversation with an attendant can be transferred: take it over or assign it."))
    _require_holder_or_manager(conversation, actor)
    _check_assignee(conversation, assignee)
    return _Target(Status.ASSIGNED, assignee, None)


def _to_queue(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    _require_open(conversation)
    if conversation.status == Status.QUEUED:
        raise _conflict(gettext("This conversation is already waiting in the queue."))
    _require_holder_or_manager(conversation, actor)
    return _Target(Status.QUEUED, None, None)


def _to_bot(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    _require_open(conversation)
    if conversation.status == Status.BOT:
        raise _conflict(gettext("This conversation is already with the bot."))
    _require_holder_or_manager(conversation, actor)
    return _Target(Status.BOT, None, None)


def _close(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    if conversation.status == Status.CLOSED:
        raise _conflict(gettext("This conversation is already closed."))
    _require_holder_or_manager(conversation, actor)
    # The assignee stays: who handled it is history (reports, and they may reopen it).
    return _Target(Status.CLOSED, conversation.assignee, timezone.now())


def _reopen_to(to: str | None) -> Callable[[Conversation, _Actor, Any], _Target]:
    def rule(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
        if conversation.status != Status.CLOSED:
            raise _conflict(gettext("This conversation is open."))
        if not (actor.manages or actor.holds(conversation)):
            raise _forbidden(gettext("Only its last attendant or a supervisor can reopen this conversation."))
        target = to or (Status.ASSIGNED if actor.may_own else Status.QUEUED)
        if target == Status.ASSIGNED:
            if not actor.may_own:
                raise _forbidden(gettext("You are not a member of this conversation's inbox."))
            return _Target(Status.ASSIGNED, actor.user, None)
        if target in (Status.QUEUED, Status.BOT):
            return _Target(target, None, None)
        raise ValueError(f"cannot reopen to {target!r}")

    return rule


def _hand_off(conversation: Conversation, actor: _Actor, assignee: Any) -> _Target:
    _require_open(conversation)
    if conversation.status != Status.BOT:
        raise _conflict(gettext("Only a conversation with the bot can be handed over to people."))
    return _Target(Status.QUEUED, None, None)


def _other_open(conversation: Conversation) -> int | None:
    return (
        Conversation.objects.open()
        .filter(inbox_id=conversation.inbox_id, customer_id=conversation.customer_id)
        .exclude(pk=conversation.pk)
        .values_list("pk", flat=True)
        .first()
    )


def _refuse_second_open(other: int | None) -> TransitionRefused:
    if other is None:
        return _conflict(gettext("This customer already has another open conversation in this inbox."))
    return _conflict(
        gettext("This customer already has another open conversation in this inbox (#%(id)s): continue there.")
        % {"id": other}
    )


# --- The engine --------------------------------------------------------------------------------


def _change(
    conversation: Conversation | int,
    actor: Any,
    action: str,
    rule: Callable[[Conversation, _Actor, Any], _Target],
    *,
    assignee: Any = None,
    reason: str = "",
    event: dict[str, Any] | None = None,
    event_kind: str = "",
) -> Conversation:
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    with transaction.atomic():
        # The row lock serialises every transition (and intake's open_conversation) on this
        # conversation: the rule below always sees the latest committed owner.
        current = Conversation.objects.select_for_update().get(pk=pk)
        who = _actor(actor, current.inbox_id)
        if not (who.system or who.admin or who.role is not None):
            raise _forbidden(gettext("You are not a member of this conversation's inbox."))
        target = rule(current, who, assignee)
        before_status, before_assignee_id = current.status, current.assignee_id
        if before_status == Status.CLOSED and target.status != Status.CLOSED:
            # Checked first for a clear message; the constraint still decides a race with
            # intake opening a new conversation for the same customer.
            other = _other_open(current)
            if other is not None:
                raise _refuse_second_open(other)
        try:
            services.set_ownership(current, status=target.status, assignee=target.assignee, closed=target.closed)
        except IntegrityError:
            if before_status != Status.CLOSED:
                raise
            raise _refuse_second_open(_other_open(current)) from None
        change = OwnershipChange.objects.create(
            conversation=current,
            action=action,
            actor=actor,
            from_status=before_status,
            from_assignee_id=before_assignee_id,
            to_status=current.status,
            to_assignee_id=current.assignee_id,
            reason=reason or "",
        )
        _track_handoff(current, action)
        # The timeline's "taken over by Ana": names as of now (rendered translated later).
        content = {
            "actor": actor.pk if actor is not None else None,
            "actor_name": _name(actor) if actor is not None else "",
            "to_status": current.status,
            "to_name": _name(current.assignee) if current.status == Status.ASSIGNED and current.assignee else "",
            "reason": reason or "",
        }
        services.record_event(current, event_kind or action, **{**content, **(event or {})})
        conversation_signals.send_on_commit(
            signals.ownership_changed,
            conversation_id=current.pk,
            inbox_id=current.inbox_id,
            change_id=change.pk,
            action=action,
            from_status=before_status,
            to_status=current.status,
            assignee_id=current.assignee_id,
            actor_id=actor.pk if actor is not None else None,
        )
        if action in _FREES_OR_QUEUES:
            jobs.enqueue_on_commit(ASSIGN_QUEUE_TASK, current.inbox_id)
    if isinstance(conversation, Conversation):
        # The caller's copy shows the new owner too.
        for field in ("status", "assignee", "closed", "updated"):
            setattr(conversation, field, getattr(current, field))
    return current


def _track_handoff(conversation: Conversation, action: str) -> None:
    """The open handoff's timestamps, in the transaction of the change itself (so a report
    never sees a conversation assigned while its handoff says waiting): the first assignment
    (who and when), and its end on close or return to the bot."""
    if conversation.status == Status.ASSIGNED:
        Handoff.objects.filter(conversation=conversation, closed__isnull=True, assigned__isnull=True).update(
            assigned=timezone.now(), assignee=conversation.assignee, updated=timezone.now()
        )
    elif conversation.status in (Status.CLOSED, Status.BOT):
        Handoff.objects.filter(conversation=conversation, closed__isnull=True).update(
            closed=timezone.now(), updated=timezone.now()
        )


# --- The transitions ---------------------------------------------------------------------------


def take_over(conversation: Conversation | int, actor: Any, *, reason: str = "") -> Conversation:
    """The actor takes a conversation with the bot or in the queue for themselves."""
    return _change(conversation, actor, Action.TAKE_OVER, _take_over, reason=reason)


def assign(conversation: Conversation | int, actor: Any, assignee: Any, *, reason: str = "") -> Conversation:
    """A supervisor (or the system) gives a conversation to a member of its inbox."""
    return _change(conversation, actor, Action.ASSIGN, _assign, assignee=assignee, reason=reason)


def transfer_to_attendant(
    conversation: Conversation | int, actor: Any, assignee: Any, *, reason: str = ""
) -> Conversation:
    """Hand an assigned conversation to another member of its inbox."""
    return _change(conversation, actor, Action.TRANSFER, _transfer, assignee=assignee, reason=reason)


def transfer_to_queue(conversation: Conversation | int, actor: Any, *, reason: str = "") -> Conversation:
    """Back to the queue, for any attendant of the inbox to take (also the bot's handoff)."""
    return _change(conversation, actor, Action.TO_QUEUE, _to_queue, reason=reason)


def transfer_to_bot(conversation: Conversation | int, actor: Any, *, reason: str = "") -> Conversation:
    """Back to the bot, which answers the customer's next message."""
    return _change(conversation, actor, Action.TO_BOT, _to_bot, reason=reason)


def close(conversation: Conversation | int, actor: Any, *, resolution: str = "") -> Conversation:
    """Close with a resolution note (kept on the audit row); sets ``closed``."""
    return _change(conversation, actor, Action.CLOSE, _close, reason=resolution)


def reopen(conversation: Conversation | int, actor: Any, *, to: str | None = None, reason: str = "") -> Conversation:
    """Reopen a closed conversation; clears ``closed``. By default it goes to the actor when
    they may hold it (a member of the inbox, or a superuser), else to the queue; ``to`` picks
    ``queued`` or ``bot`` (or ``assigned``, to the actor). Refused when the customer already
    has another open conversation in the inbox."""
    return _change(conversation, actor, Action.REOPEN, _reopen_to(to), reason=reason)


RULES: dict[str, Callable[[Conversation, _Actor, Any], _Target]] = {
    Action.TAKE_OVER: _take_over,
    Action.ASSIGN: _assign,
    Action.TRANSFER: _transfer,
    Action.TO_QUEUE: _to_queue,
    Action.TO_BOT: _to_bot,
    Action.CLOSE: _close,
    Action.REOPEN: _reopen_to(None),
}


def available_actions(actor: Any, conversation: Conversation) -> frozenset[str]:
    """Which transitions this actor may attempt on this conversation as loaded (for showing
    buttons; the transition itself checks again under the lock). Assign and transfer are
    listed when some assignee could be picked."""
    who = _actor(actor, conversation.inbox_id)
    if not (who.system or who.admin or who.role is not None):
        return frozenset()
    allowed = set()
    for action, rule in RULES.items():
        try:
            rule(conversation, who, _ANYONE)
        except TransitionRefused:
            continue
        allowed.add(action)
    return frozenset(allowed)


# --- Presence ----------------------------------------------------------------------------------


def user_group(user_id: int) -> str:
    """The channel-layer group of one user's open consoles (every tab, every device)."""
    return f"user-{user_id}"


def presence_group(inbox_id: int) -> str:
    """Who supervises an inbox listens here for its members' presence (ids only)."""
    return f"presence-{inbox_id}"


def get_presence(user: Any) -> str:
    """This user's presence; someone who never set one is offline."""
    found = Attendant.objects.filter(user=user).values_list("presence", flat=True).first()
    return found or Attendant.Presence.OFFLINE


def set_presence(user: Any, presence: str) -> Attendant:
    """Set a staff user's presence (online, away, offline) and tell, after commit, their other
    consoles and the supervisors of their inboxes. Setting the current value again changes
    nothing and announces nothing."""
    if presence not in Attendant.Presence.values:
        raise TransitionRefused(gettext("Unknown presence."), TransitionRefused.INVALID)
    with transaction.atomic():
        attendant, _created = Attendant.objects.select_for_update().get_or_create(user=user)
        if attendant.presence == presence and attendant.presence_changed is not None:
            return attendant
        attendant.presence = presence
        attendant.presence_changed = timezone.now()
        attendant.save(update_fields=["presence", "presence_changed", "updated"])
        inbox_ids = list(Membership.objects.filter(user=user).values_list("inbox_id", flat=True))
        event = {"type": "presence.changed", "user_id": user.pk, "presence": presence}
        events.publish_on_commit([user_group(user.pk)], event)
        for inbox_id in inbox_ids:
            events.publish_on_commit([presence_group(inbox_id)], {**event, "inbox_id": inbox_id})
            if presence == Attendant.Presence.ONLINE:
                # Someone with room just arrived: the queue need not wait for the next beat.
                jobs.enqueue_on_commit(ASSIGN_QUEUE_TASK, inbox_id)
    return attendant


def set_sound(user: Any, sound: bool) -> None:
    """The console's sound on assignment, on or off (a preference: no event)."""
    attendant, _created = Attendant.objects.get_or_create(user=user)
    if attendant.sound != sound:
        attendant.sound = sound
        attendant.save(update_fields=["sound", "updated"])


# --- Handoffs: the bot hands a conversation to people ------------------------------------------


def _clamp_priority(priority: int) -> int:
    return max(min(int(priority), max(Handoff.Priority.values)), min(Handoff.Priority.values))


def _merge_detail(old: str, new: str) -> str:
    if not new or new in old:
        return old
    return f"{old}\n{new}" if old else new


def request_handoff(
    conversation: Conversation | int,
    *,
    reason: str,
    priority: int = Handoff.Priority.NORMAL,
    summary: str = "",
    detail: str = "",
    lead: dict | None = None,
    actor: Any = None,
) -> Handoff:
    """Hand a conversation to people with a packet (reason, priority, summary, lead data).

    From the bot: the conversation joins the queue (an ``OwnershipChange`` HANDOFF, a "handoff"
    timeline event) with the handoff's priority, and automatic assignment runs after commit.
    Already queued or assigned: the open handoff is updated instead (the priority only goes up,
    the lead data is merged) and no owner changes; a conversation queued without one (by a
    person, or opened by an echo) gets one. A closed conversation is refused
    (``TransitionRefused``). ``actor`` is None for the bot or the system."""
    if reason not in Reason.values:
        raise TransitionRefused(gettext("Unknown handoff reason."), TransitionRefused.INVALID)
    priority = _clamp_priority(Handoff.Priority.NORMAL if priority is None else priority)
    summary, detail = summary or "", detail or ""
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    with transaction.atomic():
        current = Conversation.objects.select_for_update().get(pk=pk)
        _require_open(current)
        handoff = Handoff.objects.select_for_update().filter(conversation=current, closed__isnull=True).first()
        if current.status == Status.BOT:
            if handoff is not None:
                # Left open by an older path: a new handoff starts a new record.
                handoff.closed = timezone.now()
                handoff.save(update_fields=["closed", "updated"])
                handoff = None
            label = str(Reason(reason).label)
            current = _change(
                current,
                actor,
                Action.HANDOFF,
                _hand_off,
                reason=detail or label,
                event={"reason": reason, "reason_label": label, "priority": priority, "detail": detail},
                # The timeline says what happened: someone answers from the phone, the bot is quiet.
                event_kind="bot_paused_by_phone_app" if reason == Reason.PHONE_APP else "",
            )
        if handoff is None:
            handoff = Handoff.objects.create(
                conversation=current,
                reason=reason,
                reason_text=detail,
                priority=priority,
                summary=summary or summaries.build(current, reason=reason, lead=lead),
                lead=dict(lead or {}),
            )
            if current.status == Status.ASSIGNED:
                handoff.assigned, handoff.assignee = timezone.now(), current.assignee
                handoff.save(update_fields=["assigned", "assignee", "updated"])
        else:
            handoff.priority = max(handoff.priority, priority)
            handoff.reason_text = _merge_detail(handoff.reason_text, detail)
            if summary:
                handoff.summary = summary
            if lead:
                handoff.lead = {**handoff.lead, **lead}
            handoff.save(update_fields=["priority", "reason_text", "summary", "lead", "updated"])
        if current.status == Status.QUEUED:
            services.set_priority(current, max(current.priority, handoff.priority))
            jobs.enqueue_on_commit(ASSIGN_QUEUE_TASK, current.inbox_id)
    if isinstance(conversation, Conversation):
        for field in ("status", "assignee", "closed", "priority", "queued_since", "updated"):
            setattr(conversation, field, getattr(current, field))
    return handoff


def open_handoff(conversation_id: int) -> Handoff | None:
    return Handoff.objects.filter(conversation_id=conversation_id, closed__isnull=True).first()


def mark_first_answered(conversation_id: int, when: Any = None) -> bool:
    """A person answered the customer (from the console or the phone app): the open handoff's
    ``first_answered``, the first time only. Returns whether it was set now."""
    with transaction.atomic():
        changed = bool(
            Handoff.objects.filter(
                conversation_id=conversation_id, closed__isnull=True, first_answered__isnull=True
            ).update(first_answered=when or timezone.now(), updated=timezone.now())
        )
        if changed:
            # The open page's handoff packet redraws with its new time.
            events.conversation_updated(Conversation.objects.get(pk=conversation_id))
    return changed


def record_reopen_by_customer(conversation_id: int) -> OwnershipChange | None:
    """The audit row of intake's reopen (the customer wrote again within ``Inbox.reopen_hours``
    of a close). Idempotent: once per close (a repeated signal finds the REOPEN row already
    after the latest CLOSE)."""
    with transaction.atomic():
        current = Conversation.objects.select_for_update().get(pk=conversation_id)
        if current.status == Status.CLOSED:
            return None
        last = OwnershipChange.objects.filter(conversation=current).order_by("-created", "-id").first()
        if last is None or last.action != Action.CLOSE:
            return None
        return OwnershipChange.objects.create(
            conversation=current,
            action=Action.REOPEN,
            actor=None,
            from_status=Status.CLOSED,
            from_assignee_id=last.to_assignee_id,
            to_status=current.status,
            to_assignee_id=current.assignee_id,
            reason=gettext("The customer wrote again."),
        )


def record_csat(handoff: Handoff | int, score: int) -> bool:
    """Store the customer's rating (1 to 5) on the handoff. A later answer (the customer
    tapped another row of the same list) replaces the score: the latest word is theirs.
    Returns whether this was the first answer (the customer is thanked once)."""
    score = int(score)
    if not 1 <= score <= 5:
        raise TransitionRefused(gettext("A rating goes from 1 to 5."), TransitionRefused.INVALID)
    pk = handoff.pk if isinstance(handoff, Handoff) else handoff
    with transaction.atomic():
        locked = Handoff.objects.select_for_update().get(pk=pk)
        first = locked.csat_score is None
        locked.csat_score = score
        locked.csat_answered = timezone.now()
        locked.save(update_fields=["csat_score", "csat_answered", "updated"])
        # The packet shows the rating: the open page redraws.
        events.conversation_updated(Conversation.objects.get(pk=locked.conversation_id))
    if isinstance(handoff, Handoff):
        handoff.csat_score, handoff.csat_answered = locked.csat_score, locked.csat_answered
    return first


# --- The queue ---------------------------------------------------------------------------------


def _assignable(queryset: Any) -> Any:
    """Queued conversations people wait for in the console: not those paused because someone
    answers from the phone app (a person at the business already has them)."""
    paused = Handoff.objects.filter(conversation=OuterRef("pk"), closed__isnull=True, reason=Reason.PHONE_APP)
    return queryset.waiting().filter(~Exists(paused))


def queue_position(conversation: Conversation) -> int:
    """1 for the next conversation automatic assignment would give; 0 when not in the queue."""
    ids = list(
        _assignable(Conversation.objects.filter(inbox_id=conversation.inbox_id))
        .longest_waiting_first()
        .values_list("pk", flat=True)
    )
    return ids.index(conversation.pk) + 1 if conversation.pk in ids else 0


ESTIMATE_DAYS = 7
ESTIMATE_SAMPLE = 50


def _online_staff(inbox_id: int) -> Any:
    return Attendant.objects.filter(
        presence=Attendant.Presence.ONLINE,
        user__is_active=True,
        user__memberships__inbox_id=inbox_id,
        user__memberships__role__in=[Membership.Role.ATTENDANT, Membership.Role.SUPERVISOR],
    )


def wait_estimate(inbox_id: int, position: int = 1) -> timedelta | None:
    """How long the customer at ``position`` may wait: the median time from request to
    assignment of this inbox's last handoffs (at most ``ESTIMATE_SAMPLE`` of the last
    ``ESTIMATE_DAYS`` days), times the rounds of assignment before their turn (position shared
    among the attendants online). None without recent data."""
    since = timezone.now() - timedelta(days=ESTIMATE_DAYS)
    rows = (
        Handoff.objects.filter(conversation__inbox_id=inbox_id, assigned__gte=since)
        .exclude(reason=Reason.PHONE_APP)
        .order_by("-assigned")
        .values_list("requested", "assigned")[:ESTIMATE_SAMPLE]
    )
    waits = [(assigned - requested).total_seconds() for requested, assigned in rows if assigned >= requested]
    if not waits:
        return None
    online = _online_staff(inbox_id).values("pk").distinct().count()
    rounds = max(1, math.ceil(max(position, 1) / max(online, 1)))
    return timedelta(seconds=statistics.median(waits) * rounds)


def _lock_candidates(inbox_id: int) -> list[Attendant]:
    """The online staff of the inbox, row-locked in primary-key order: every assignment run
    (of any inbox: a person may belong to several) takes these locks in the same order, so two
    runs are serialised on the people they could give to, and count open conversations only
    after the other has committed. The same order everywhere means no deadlock."""
    ids = sorted(set(_online_staff(inbox_id).values_list("pk", flat=True)))
    if not ids:
        return []
    return list(
        Attendant.objects.select_for_update()
        .filter(pk__in=ids, presence=Attendant.Presence.ONLINE)
        .select_related("user")
        .order_by("pk")
    )


def _advisory_lock(inbox_id: int) -> None:
    # On PostgreSQL, also one assignment run per inbox at a time (released at commit): an
    # attendant's presence may change between the candidates query and the row locks.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [8_801, inbox_id])


def _assign_next(inbox_id: int) -> tuple[int, int] | None:
    """Give the next conversation of the queue to the online member with the fewest open ones
    under their capacity (the oldest ``last_assigned`` among equals, never-assigned first).
    One transaction; None when nobody has room or nothing waits."""
    with transaction.atomic():
        _advisory_lock(inbox_id)
        people = _lock_candidates(inbox_id)
        if not people:
            return None
        open_counts = dict(
            Conversation.objects.filter(status=Status.ASSIGNED, assignee_id__in=[a.user_id for a in people])
            .values_list("assignee_id")
            .annotate(n=Count("id"))
            .values_list("assignee_id", "n")
        )
        with_room = [a for a in people if open_counts.get(a.user_id, 0) < a.capacity]
        if not with_room:
            return None
        never = timezone.now() - timedelta(days=36_500)
        chosen = min(with_room, key=lambda a: (open_counts.get(a.user_id, 0), a.last_assigned or never, a.pk))
        waiting = (
            _assignable(Conversation.objects.filter(inbox_id=inbox_id))
            .longest_waiting_first()
            .values_list("pk", flat=True)
        )
        for pk in waiting[:20]:
            # Locked and checked again: a person may have taken it over meanwhile (``assign``
            # would otherwise move it from them).
            conversation = Conversation.objects.select_for_update().filter(pk=pk, status=Status.QUEUED).first()
            if conversation is None:
                continue
            try:
                assign(conversation, None, chosen.user)
            except TransitionRefused as refused:
                logger.info("automatic assignment of #%s to %s refused: %s", pk, chosen.user_id, refused.message)
                continue
            chosen.last_assigned = timezone.now()
            chosen.save(update_fields=["last_assigned", "updated"])
            return (conversation.pk, chosen.user_id)
        return None


def assign_queue(inbox_id: int | None = None) -> list[tuple[int, int]]:
    """Automatic assignment: the queue of one inbox (or of every inbox with a queue), in queue
    order, to online attendants and supervisors with room. Returns (conversation id, user id)
    for each conversation given. Safe to run twice at once."""
    if inbox_id is None:
        inbox_ids = sorted(set(_assignable(Conversation.objects.all()).values_list("inbox_id", flat=True)))
    else:
        inbox_ids = [inbox_id]
    given: list[tuple[int, int]] = []
    for pk in inbox_ids:
        while (pair := _assign_next(pk)) is not None:
            given.append(pair)
    return given


def return_from_offline() -> list[int]:
    """Conversations of attendants offline or away for longer than the grace
    (``HANDOFF_OFFLINE_GRACE_MINUTES``) that they have not answered since they got them go back
    to the queue (as the system), then the queue is assigned again. Returns their ids."""
    cutoff = timezone.now() - timedelta(minutes=settings.HANDOFF_OFFLINE_GRACE_MINUTES)
    gone = Attendant.objects.filter(
        presence__in=[Attendant.Presence.OFFLINE, Attendant.Presence.AWAY], presence_changed__lte=cutoff
    ).values("user_id")
    candidates = Conversation.objects.filter(status=Status.ASSIGNED, assignee_id__in=gone).values_list(
        "pk", "assignee_id"
    )
    returned: list[int] = []
    inboxes: set[int] = set()
    for pk, assignee_id in list(candidates):
        with transaction.atomic():
            # Checked under the row lock every send takes too (outbound locks the conversation):
            # an answer being sent right now either committed before, and counts, or waits.
            locked = Conversation.objects.select_for_update().filter(pk=pk).first()
            if locked is None or (locked.status, locked.assignee_id) != (Status.ASSIGNED, assignee_id):
                continue
            if _answered_since_assigned(pk, assignee_id):
                continue
            try:
                transfer_to_queue(locked, None, reason=gettext("The attendant went offline without answering."))
            except TransitionRefused:
                continue
        returned.append(pk)
        inboxes.add(locked.inbox_id)
    for inbox_id in sorted(inboxes):
        assign_queue(inbox_id)
    return returned


def _answered_since_assigned(conversation_id: int, assignee_id: int) -> bool:
    handoff = open_handoff(conversation_id)
    if handoff is not None and handoff.first_answered is not None:
        return True
    since = (
        OwnershipChange.objects.filter(conversation_id=conversation_id, to_assignee_id=assignee_id)
        .exclude(to_status=Status.CLOSED)
        .order_by("-created", "-id")
        .values_list("created", flat=True)
        .first()
    )
    answered = Message.objects.filter(
        conversation_id=conversation_id,
        direction=Message.Direction.OUT,
        sender_kind__in=[Message.SenderKind.ATTENDANT, Message.SenderKind.PHONE_APP],
    )
    if since is not None:
        answered = answered.filter(wa_timestamp__gte=since)
    return answered.exists()
