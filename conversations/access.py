"""Who may see and act on what: the one place that answers it for views, the API, websockets,
the admin and the ownership services.

The rules (staff belong to inboxes through ``Membership``; superusers need none):

- **Superusers** (admins) see and act on everything.
- **Supervisors** of an inbox see and act on every conversation of that inbox, in any state.
- **Attendants** of an inbox see, and may act on, the conversations with the bot or waiting
  in the queue of their inboxes and the ones assigned to them (closed ones they were the last
  to hold included: they may reopen them). They may also *read* the closed history of the
  customers they can see right now (a customer in their queue, with the bot or assigned to
  them), so whoever takes a conversation over knows what happened before, without browsing
  every closed conversation of the inbox: another attendant's conversation stays private
  while it is theirs. Reading that history gives no right to act on it.
- Leaving an inbox (membership deleted) takes all of that away at once, assigned
  conversations included: access follows the membership, never a stale ``assignee``.
- Inactive and anonymous users see nothing.

Everything here is a lazy queryset (one SQL query with subqueries on the memberships), so a
list filters in the database, never row by row in Python. Looking an object up for a user
answers 404 for what they may not see, and ``PermissionDenied`` for what they may read but
not change.

The Django admin is for superusers and supervisors only (``may_use_admin``), and shows a
supervisor only the rows of the inboxes they supervise (``supervised_inbox_ids``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext

from conversations.models import Conversation, Customer, Inbox, Membership, Message
from conversations.querycache import CompiledQuery

Status = Conversation.Status
Role = Membership.Role

# What an attendant of the inbox may take over without being its assignee.
UNOWNED = (Status.BOT, Status.QUEUED)


def _is_active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_admin(user: Any) -> bool:
    """Superusers see and do everything (the Django ``is_superuser`` flag)."""
    return _is_active(user) and bool(user.is_superuser)


# --- Inboxes ----------------------------------------------------------------------------------


def member_inbox_ids(user: Any, role: str | None = None) -> QuerySet[Membership]:
    """A lazy subquery of the ids of the inboxes this user belongs to (with ``role`` if given)."""
    if not _is_active(user):
        return Membership.objects.none().values("inbox_id")
    return _member_inbox_ids(user.pk, role)


def _member_inbox_ids(user_id: int, role: str | None = None) -> QuerySet[Membership]:
    memberships = Membership.objects.filter(user_id=user_id)
    if role is not None:
        memberships = memberships.filter(role=role)
    return memberships.values("inbox_id")


def supervised_inbox_ids(user: Any) -> QuerySet[Membership]:
    return member_inbox_ids(user, Role.SUPERVISOR)


def inboxes_for(user: Any) -> QuerySet[Inbox]:
    """The inboxes this user works in (every inbox for a superuser)."""
    if is_admin(user):
        return Inbox.objects.all()
    return Inbox.objects.filter(pk__in=member_inbox_ids(user))


# A user's memberships (inbox -> role): every role question reads them whole (a few rows).
_MEMBERSHIPS = CompiledQuery(
    lambda user_id: Membership.objects.filter(user_id=user_id).order_by().values_list("inbox_id", "role"),
    -987654321,
)
# Memberships remembered for the length of one HTTP request (``remembering_roles``, opened by
# config.middleware.AccessScopeMiddleware): a console page asks "what is this user's role here?"
# from its view, its actions, its services and its template tags, and each asking was a query.
# Only a request remembers: a websocket or a worker lives for hours, and a membership taken
# away must count at its next question.
_remembered: ContextVar[dict[int, dict[int, str]] | None] = ContextVar("access_roles", default=None)


@contextmanager
def remembering_roles() -> Iterator[None]:
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def forget_roles(user_id: int) -> None:
    """A membership of this user changed: the next question reads it again (in this request)."""
    remembered = _remembered.get()
    if remembered is not None:
        remembered.pop(user_id, None)


def roles(user: Any) -> dict[int, str]:
    """This user's memberships, inbox id -> ``Membership.Role`` (empty for an inactive or
    anonymous user). One query, or none when the request already read them."""
    if not _is_active(user):
        return {}
    remembered = _remembered.get()
    if remembered is not None and user.pk in remembered:
        return remembered[user.pk]
    found = dict(_MEMBERSHIPS(user.pk))
    if remembered is not None:
        remembered[user.pk] = found
    return found


def role_in(user: Any, inbox_id: int) -> str | None:
    """This user's role in one inbox (``Membership.Role``), or None."""
    return roles(user).get(inbox_id)


def supervises_any(user: Any) -> bool:
    """Is this user a supervisor of at least one inbox?"""
    return Role.SUPERVISOR in roles(user).values()


def can_own(user: Any, inbox_id: int) -> bool:
    """May this user hold (be the assignee of) a conversation of this inbox? Members of the
    inbox, of either role, and superusers (an admin may take a conversation over)."""
    return is_admin(user) or role_in(user, inbox_id) is not None


def assignable_users(inbox: Inbox | int) -> QuerySet[Any]:
    """The active members of an inbox, who may be assigned its conversations."""
    from django.contrib.auth import get_user_model

    inbox_id = inbox.pk if isinstance(inbox, Inbox) else inbox
    return (
        get_user_model()
        .objects.filter(is_active=True, memberships__inbox_id=inbox_id)
        .order_by("first_name", "username")
        .distinct()
    )


# --- Conversations ----------------------------------------------------------------------------


def _rule(user_id: int, *, history: bool) -> Q:
    """The rule for a member of inboxes (an active user who is not an admin), as one filter.
    The inbox condition is a top-level AND, so the planner can use the inbox indexes."""
    member = _member_inbox_ids(user_id)
    allowed = (
        Q(inbox_id__in=_member_inbox_ids(user_id, Role.SUPERVISOR)) | Q(status__in=UNOWNED) | Q(assignee_id=user_id)
    )
    if history:
        # The customers this user is serving right now: their closed history is readable.
        # Asked per customer (EXISTS), so that a page about one customer checks that
        # customer's few conversations; as ``customer_id IN (...)`` the database first
        # collected every customer the user serves (thousands of rows, 5 ms) for each query.
        serving = Conversation.objects.filter(
            Q(status__in=UNOWNED) | Q(status=Status.ASSIGNED, assignee_id=user_id),
            customer_id=OuterRef("customer_id"),
            inbox_id__in=member,
        )
        allowed |= Q(Exists(serving), status=Status.CLOSED)
    return Q(inbox_id__in=member) & allowed


def conversations_for(user: Any) -> QuerySet[Conversation]:
    """Every conversation this user may see, with inbox, customer and assignee joined."""
    qs = Conversation.objects.select_related("inbox", "customer", "assignee")
    if is_admin(user):
        return qs
    if not _is_active(user):
        return qs.none()
    return qs.filter(_rule(user.pk, history=True))


# get_conversation_for_user's lookup, compiled once per process: every console page and action
# starts with it, and building the rule's query cost more than running it.
_ANY_CONVERSATION = CompiledQuery(
    lambda pk: Conversation.objects.select_related("inbox", "customer", "assignee").filter(pk=pk)[:1],
    -987654321,
)
_VISIBLE_CONVERSATION = CompiledQuery(
    lambda user_id, pk: Conversation.objects.select_related("inbox", "customer", "assignee").filter(
        _rule(user_id, history=True), pk=pk
    )[:1],
    -987654321,
    -987654322,
)


def _customer_conversations(limit: int, *, rule: bool) -> CompiledQuery:
    def build(*values: int) -> QuerySet[Conversation]:
        user_id, customer_id, exclude_pk = values if rule else (None, *values)
        qs = Conversation.objects.select_related("inbox", "customer", "assignee").filter(customer_id=customer_id)
        if rule:
            qs = qs.filter(_rule(user_id, history=True))
        return qs.exclude(pk=exclude_pk).order_by("-opened", "-pk")[:limit]

    samples = (-987654321, -987654322, -987654323) if rule else (-987654322, -987654323)
    return CompiledQuery(build, *samples)


# (limit, for a member of inboxes) -> the compiled query (a LIMIT is part of the SQL's text).
_customer_queries: dict[tuple[int, bool], CompiledQuery] = {}


def other_conversations_for(user: Any, conversation: Conversation, limit: int) -> list[Conversation]:
    """The customer's other conversations this user may see, newest first (at most ``limit``):
    ``conversations_for`` for one customer, compiled once per process for the console's panel."""
    if not _is_active(user):
        return []
    rule = not is_admin(user)
    query = _customer_queries.get((limit, rule))
    if query is None:
        query = _customer_queries[(limit, rule)] = _customer_conversations(limit, rule=rule)
    values = (conversation.customer_id, conversation.pk)
    return query(user.pk, *values) if rule else query(*values)


def writable_conversations_for(user: Any) -> QuerySet[Conversation]:
    """The conversations this user may act on (take over, answer, transfer, close, reopen)."""
    qs = Conversation.objects.select_related("inbox", "customer", "assignee")
    if is_admin(user):
        return qs
    if not _is_active(user):
        return qs.none()
    return qs.filter(_rule(user.pk, history=False))


def can_act(user: Any, conversation: Conversation) -> bool:
    """The same rule as ``writable_conversations_for``, for one conversation already loaded."""
    if is_admin(user):
        return True
    role = role_in(user, conversation.inbox_id)
    if role is None:
        return False
    if role == Role.SUPERVISOR:
        return True
    return conversation.status in UNOWNED or conversation.assignee_id == user.pk


@dataclass
class Audience:
    """Who among some users may see which of some conversations (``who_may_see``)."""

    # Conversation id -> its ``updated`` (the conversations that exist).
    updated: dict[int, Any] = field(default_factory=dict)
    # (user id, conversation id) -> may act on it; absent: may not see it.
    allowed: dict[tuple[int, int], bool] = field(default_factory=dict)
    # The active superusers among the users, and the others' memberships (inbox -> role).
    admins: set[int] = field(default_factory=set)
    roles: dict[int, dict[int, str]] = field(default_factory=dict)


# who_may_see's reads, compiled once per process (conversations/querycache.py): the live console
# asks it for every round of renders.
_AUDIENCE_CONVERSATIONS = CompiledQuery(
    lambda ids: (
        Conversation.objects.filter(pk__in=ids)
        .order_by()
        .values_list("pk", "inbox_id", "status", "assignee_id", "customer_id", "updated")
    ),
    [-987654321],
)
_AUDIENCE_SERVING = CompiledQuery(
    lambda customer_ids: (
        Conversation.objects.filter(customer_id__in=customer_ids, status__in=[*UNOWNED, Status.ASSIGNED])
        .order_by()
        .values_list("customer_id", "inbox_id", "status", "assignee_id")
    ),
    [-987654321],
)


def _users_with_memberships(user_ids: list[int]) -> QuerySet:
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(pk__in=user_ids, is_active=True)
        .order_by()
        .values_list("pk", "is_superuser", "memberships__inbox_id", "memberships__role")
    )


_AUDIENCE_USERS = CompiledQuery(_users_with_memberships, [-987654321])


def who_may_see(
    user_ids: Iterable[int], conversation_ids: Iterable[int], *, loaded: Iterable[Conversation] = ()
) -> Audience:
    """``conversations_for`` and ``can_act`` for many users and conversations at once, read
    fresh from the database in at most three small queries (the users with their memberships,
    the conversations not ``loaded`` by the caller just before, and the customers' open
    conversations when a closed one's history is in question) and decided here by the same
    rules. The live console asks this once per round for every socket of its process instead
    of once per socket (tests/console/test_live_access.py walks every role, status and
    history case against ``conversations_for``)."""
    audience = Audience()
    user_ids, conversation_ids = set(user_ids), set(conversation_ids)
    if not user_ids:
        return audience
    rows = [
        (c.pk, c.inbox_id, c.status, c.assignee_id, c.customer_id, c.updated)
        for c in loaded
        if c.pk in conversation_ids
    ]
    unread = conversation_ids - {row[0] for row in rows}
    if unread:
        rows += _AUDIENCE_CONVERSATIONS(sorted(unread))
    audience.updated = {row[0]: row[5] for row in rows}
    admins, roles = audience.admins, audience.roles
    for user_id, superuser, inbox_id, role in _AUDIENCE_USERS(sorted(user_ids)):
        if superuser:
            admins.add(user_id)
        elif inbox_id is not None:
            roles.setdefault(user_id, {})[inbox_id] = role
    # The closed history an attendant may read: the customer is theirs to serve right now.
    history = {row[4] for row in rows if row[2] == Status.CLOSED}
    serving: dict[int, list[tuple[int, str, Any]]] = {}
    if history and roles:
        for customer_id, inbox_id, status, assignee_id in _AUDIENCE_SERVING(sorted(history)):
            serving.setdefault(customer_id, []).append((inbox_id, status, assignee_id))
    for pk, inbox_id, status, assignee_id, customer_id, _updated in rows:
        for user_id in admins:
            audience.allowed[(user_id, pk)] = True
        for user_id, inboxes in roles.items():
            role = inboxes.get(inbox_id)
            if role is None:
                continue
            if role == Role.SUPERVISOR or status in UNOWNED or assignee_id == user_id:
                audience.allowed[(user_id, pk)] = True
            elif status == Status.CLOSED and any(
                inbox in inboxes and (state in UNOWNED or (state == Status.ASSIGNED and assignee == user_id))
                for inbox, state, assignee in serving.get(customer_id, ())
            ):
                audience.allowed[(user_id, pk)] = False
    return audience


def get_conversation_for_user(user: Any, pk: Any, *, write: bool = False) -> Conversation:
    """The conversation ``pk`` if this user may see it (404 otherwise, whether or not it
    exists: ids are not an oracle). With ``write=True``, ``PermissionDenied`` when they may
    read it but not act on it."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    if not 0 < pk < 2**63:
        raise Http404
    if is_admin(user):
        conversation = _ANY_CONVERSATION.one(pk)
    elif _is_active(user):
        conversation = _VISIBLE_CONVERSATION.one(user.pk, pk)
    else:
        conversation = None
    if conversation is None:
        raise Http404
    if write and not can_act(user, conversation):
        raise PermissionDenied(gettext("You can read this conversation but not act on it."))
    return conversation


# --- Customers and messages -------------------------------------------------------------------


def customers_for(user: Any) -> QuerySet[Customer]:
    """Customers with at least one conversation this user may see."""
    if is_admin(user):
        return Customer.objects.all()
    visible = conversations_for(user).filter(customer_id=OuterRef("pk"))
    return Customer.objects.filter(Exists(visible.values("pk")))


def get_customer_for_user(user: Any, pk: Any) -> Customer:
    return get_object_or_404(customers_for(user), pk=pk)


def messages_for(user: Any) -> QuerySet[Message]:
    """Messages of the conversations this user may see."""
    qs = Message.objects.select_related("conversation")
    if is_admin(user):
        return qs
    return qs.filter(conversation_id__in=conversations_for(user).values("pk"))


def get_message_for_user(user: Any, pk: Any) -> Message:
    """A message (for its media, say) if this user may see its conversation; 404 otherwise."""
    return get_object_or_404(messages_for(user), pk=pk)


# --- The Django admin -------------------------------------------------------------------------


def may_use_admin(user: Any) -> bool:
    """The back office is for admins and supervisors. Attendants work in the console: being
    ``is_staff`` (as the demo's attendants are) is not enough to read every message there."""
    if not (_is_active(user) and user.is_staff):
        return False
    return bool(user.is_superuser) or Membership.objects.filter(user=user, role=Role.SUPERVISOR).exists()
