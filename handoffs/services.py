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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from conversations import access, events, services
from conversations import signals as conversation_signals
from conversations.models import Conversation, Membership
from handoffs import signals
from handoffs.models import Attendant, OwnershipChange

Status = Conversation.Status
Action = OwnershipChange.Action

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
        # The timeline's "taken over by Ana": names as of now (rendered translated later).
        services.record_event(
            current,
            action,
            actor=actor.pk if actor is not None else None,
            actor_name=_name(actor) if actor is not None else "",
            to_status=current.status,
            to_name=_name(current.assignee) if current.status == Status.ASSIGNED and current.assignee else "",
            reason=reason or "",
        )
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
    if isinstance(conversation, Conversation):
        # The caller's copy shows the new owner too.
        for field in ("status", "assignee", "closed", "updated"):
            setattr(conversation, field, getattr(current, field))
    return current


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
    return attendant


def set_sound(user: Any, sound: bool) -> None:
    """The console's sound on assignment, on or off (a preference: no event)."""
    attendant, _created = Attendant.objects.get_or_create(user=user)
    if attendant.sound != sound:
        attendant.sound = sound
        attendant.save(update_fields=["sound", "updated"])
