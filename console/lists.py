"""The console's lists: the queue, "mine", "with the bot" and (supervisors, admins) "all".

``/console/?view=queue|mine|bot|all&q=&status=&inbox=&attendant=&label=&since=&until=&page=``.
Every row comes from ``conversations/access.py``; filters only narrow what the user may see
(an inbox, label or attendant id from the query string is checked against their options).

Cost, with 100k conversations: a page is one query walking an index in list order and stopping
after a page (``PAGE_SIZE + 1`` rows; no total count), pages stop at ``MAX_PAGE`` (searching
and filtering reach older conversations), and the counters are one aggregate over the *open*
conversations only (partial index). Other pages render the same column with ``list_context``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from console import search
from conversations import access
from conversations.labels import message_type_label
from conversations.models import Conversation, Label, Message
from conversations.querycache import CompiledQuery

Status = Conversation.Status

PAGE_SIZE = 25
# Offsets stay cheap (an index walk of at most 1,000 rows); beyond that, search or filter.
MAX_PAGE = 40
VIEWS = {
    "queue": _("Queue"),
    "mine": _("Mine"),
    "bot": _("With the bot"),
    "all": _("All"),
}


@dataclass
class Filters:
    view: str = "queue"
    q: str = ""
    status: str = ""
    inbox: int | None = None
    attendant: int | None = None
    label: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    page: int = 1
    errors: list[str] = field(default_factory=list)

    def query(self, **changes: Any) -> str:
        """This list's query string, with ``changes`` (for tabs and page links)."""
        values = {
            "view": self.view,
            "q": self.q,
            "status": self.status,
            "inbox": self.inbox,
            "attendant": self.attendant,
            "label": self.label,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "page": self.page,
        }
        values.update(changes)
        if values["page"] == 1:
            values["page"] = None
        return urlencode({key: value for key, value in values.items() if value not in (None, "")})

    @property
    def narrowed(self) -> bool:
        return bool(self.q or self.status or self.inbox or self.attendant or self.label or self.since or self.until)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def may_see_all(user: Any) -> bool:
    """ "All" (every status, closed included) is for admins and supervisors."""
    return access.is_admin(user) or access.supervises_any(user)


def parse_filters(request: HttpRequest, *, supervisor: bool) -> Filters:
    params = request.GET
    view = params.get("view", "queue")
    if view not in VIEWS or (view == "all" and not supervisor):
        view = "queue"
    status = params.get("status", "")
    return Filters(
        view=view,
        q=params.get("q", "").strip()[:100],
        status=status if status in Status.values else "",
        inbox=_int(params.get("inbox")),
        attendant=_int(params.get("attendant")),
        label=_int(params.get("label")),
        since=_date(params.get("since")),
        until=_date(params.get("until")),
        page=min(max(_int(params.get("page")) or 1, 1), MAX_PAGE),
    )


def _start_of(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in the business time zone (dates people pick are local dates)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def counters_context(user: Any) -> dict[str, Any]:
    """What the ``counters`` partial needs (the live socket re-renders it with this): the
    open conversations of the user's inboxes counted once by inbox, status and assignee
    (``live_tallies``), then read through the access rule in Python (``counters_from_tallies``,
    which the live rounds share)."""
    admin = access.is_admin(user)
    roles = access.roles(user)
    tallies = live_tallies(None if admin else roles)
    return counters_from_tallies(tallies, user.pk, admin=admin, roles=roles)


def _counters(counts: dict[str, int], supervisor: bool) -> dict[str, Any]:
    return {
        "counters": [
            {"view": key, "label": label, "count": counts["open" if key == "all" else key]}
            for key, label in VIEWS.items()
            if key != "all" or supervisor
        ],
    }


def _tallies(inbox_ids: Any = None) -> Any:
    rows = Conversation.objects.select_related(None).live()
    if inbox_ids is not None:
        rows = rows.filter(inbox_id__in=inbox_ids)
    return rows.values_list("inbox_id", "status", "assignee_id").annotate(n=Count("status")).order_by()


# Compiled once per process: every console page shows the counters, every live round reads them.
_LIVE_TALLIES = CompiledQuery(_tallies, [-987654321])
_ALL_LIVE_TALLIES = CompiledQuery(_tallies)


def live_tallies(inbox_ids: Any = None) -> list[tuple[int, str, int | None, int]]:
    """The open conversations of these inboxes (all with None) counted by inbox, status and
    assignee: one aggregate read from the partial index conv_conversation_live_idx alone (the
    cost follows the live workload, not the history), from which ``counters_from_tallies``
    answers the counters for any number of users."""
    if inbox_ids is None:
        return _ALL_LIVE_TALLIES()
    inbox_ids = sorted(inbox_ids)
    return _LIVE_TALLIES(inbox_ids) if inbox_ids else []


def counters_from_tallies(
    tallies: list[tuple[int, str, int | None, int]], user_id: int, *, admin: bool, roles: dict[int, str]
) -> dict[str, Any]:
    """``counters_context`` for one user from ``live_tallies`` and the user's memberships
    (inbox -> role): the same rule, read in Python (tests/console/test_live_access.py)."""
    Status = Conversation.Status
    counts = {"queue": 0, "bot": 0, "mine": 0, "open": 0}
    for inbox_id, status, assignee_id, n in tallies:
        role = roles.get(inbox_id)
        if not admin and role is None:
            continue
        if status == Status.QUEUED:
            counts["queue"] += n
        elif status == Status.BOT:
            counts["bot"] += n
        elif status == Status.ASSIGNED and assignee_id == user_id:
            counts["mine"] += n
        if admin or role == access.Role.SUPERVISOR or status in access.UNOWNED or assignee_id == user_id:
            counts["open"] += n
    return _counters(counts, admin or access.Role.SUPERVISOR in roles.values())


def _options(user: Any, supervisor: bool) -> dict[str, Any]:
    inboxes = list(access.inboxes_for(user).only("id", "name"))
    inbox_ids = [inbox.pk for inbox in inboxes]
    labels = list(Label.objects.filter(Q(inbox__isnull=True) | Q(inbox_id__in=inbox_ids)).only("id", "name", "color"))
    attendants = []
    if supervisor:
        attendants = list(
            get_user_model()
            .objects.filter(is_active=True, memberships__inbox_id__in=inbox_ids)
            .order_by("first_name", "username")
            .distinct()
            .only("id", "username", "first_name", "last_name")
        )
    return {"inboxes": inboxes, "labels": labels, "attendants": attendants}


@dataclass(frozen=True)
class _StandIn:
    """A user for compiling a list's query (``_PAGE_IDS``): its id is a sample value."""

    pk: int
    is_superuser: bool
    is_authenticated: bool = True
    is_active: bool = True


# Narrowing filters, in the order their values are given to a compiled page query, with the
# sample that stands for each while compiling (never equal to a constant of the query).
_NARROW_SAMPLES: dict[str, Any] = {
    "status": "\0status",
    "inbox": -987654323,
    "attendant": -987654324,
    "label": -987654325,
    "since": dt.datetime(1901, 2, 3, tzinfo=dt.UTC),
    "until": dt.datetime(1902, 3, 4, tzinfo=dt.UTC),
}


def _ids_queryset(user: Any, view: str, inbox_ids: list[int] | None, narrow: dict[str, Any]) -> Any:
    """The list's conversations in the view's order, as ids: ``conversations_for(user)``
    narrowed by the view, by ``inbox_ids`` (None for an admin) and by the ``narrow`` filters
    present (values already checked against the user's options)."""
    base = access.conversations_for(user)
    if view == "queue":
        qs = base.waiting().longest_waiting_first()
    elif view == "mine":
        qs = base.assigned_to(user.pk).recent_first()
    elif view == "bot":
        qs = base.with_bot().recent_first()
    else:
        qs = base.recent_first()
    if inbox_ids is not None:
        # Redundant with the access rule (these are the user's inboxes), but as literal values
        # the check is a cheap filter on each row the planner walks, made before any costlier
        # one (a search's per-conversation check); as the rule's subquery it is a join after.
        qs = qs.in_inboxes(inbox_ids)
    if "status" in narrow:
        qs = qs.filter(status=narrow["status"])
    if "inbox" in narrow:
        qs = qs.in_inboxes([narrow["inbox"]])
    if "attendant" in narrow:
        qs = qs.filter(assignee_id=narrow["attendant"])
    if "label" in narrow:
        qs = qs.with_label(narrow["label"])
    return qs.active_between(narrow.get("since"), narrow.get("until")).values_list("pk", flat=True)


def _compile_page(view: str, admin: bool, start: int, present: tuple[str, ...]) -> CompiledQuery:
    """One page of ids for this shape of list (an OFFSET is part of the SQL's text)."""
    # The user's id reaches the SQL through the access rule, or through "mine".
    with_user = not admin or view == "mine"

    def build(*values: Any) -> Any:
        values = list(values)
        user = _StandIn(pk=values.pop(0) if with_user else 0, is_superuser=admin)
        inbox_ids = None if admin else values.pop(0)
        narrow = dict(zip(present, values, strict=True))
        return _ids_queryset(user, view, inbox_ids, narrow)[start : start + PAGE_SIZE + 1]

    # A list sample spreads into its bucket downwards (-555000000, -555000001, ...).
    samples = [*([-987654321] if with_user else []), *([] if admin else [[-555000000]])]
    return CompiledQuery(build, *samples, *(_NARROW_SAMPLES[name] for name in present))


# (view, admin, offset, narrowing filters present) -> its compiled page query: the lists'
# page query costs more to build than to run, and the same few shapes come back all day. At
# most PAGE_SHAPES of them per process (4 views x 40 pages x 64 sets of filters could be asked
# for); a shape beyond those runs through the ORM.
_PAGE_IDS: dict[tuple[str, bool, int, tuple[str, ...]], CompiledQuery] = {}
PAGE_SHAPES = 256


def _rows(user: Any, filters: Filters, options: dict[str, Any]) -> tuple[list[Conversation], bool]:
    admin = access.is_admin(user)
    inbox_ids = None if admin else [inbox.pk for inbox in options["inboxes"]]
    # Ids from the query string count only when they are among this user's options.
    narrow: dict[str, Any] = {}
    if filters.status:
        narrow["status"] = filters.status
    if filters.inbox in {inbox.pk for inbox in options["inboxes"]}:
        narrow["inbox"] = filters.inbox
    if filters.attendant in {person.pk for person in options["attendants"]}:
        narrow["attendant"] = filters.attendant
    if filters.label in {label.pk for label in options["labels"]}:
        narrow["label"] = filters.label
    if filters.since:
        narrow["since"] = _start_of(filters.since)
    if filters.until:
        narrow["until"] = _start_of(filters.until + dt.timedelta(days=1))
    # Two steps: the page's ids first (an index walk and a top-N sort over narrow rows), then
    # those rows with customer, inbox, assignee, labels and last message. Joined in one query,
    # the planner joins every candidate (a thousand waiting conversations) to its customer
    # before sorting and cutting the page.
    start = (filters.page - 1) * PAGE_SIZE
    if filters.q:
        base = _ids_queryset(user, filters.view, inbox_ids, narrow)
        ids = search.page_ids(base, filters.q, start, PAGE_SIZE + 1, short=filters.view != "all")
    elif inbox_ids == []:
        ids = []
    else:
        present = tuple(narrow)
        shape = (filters.view, admin, start, present)
        query = _PAGE_IDS.get(shape)
        if query is None and len(_PAGE_IDS) < PAGE_SHAPES:
            query = _PAGE_IDS[shape] = _compile_page(*shape)
        if query is None:
            base = _ids_queryset(user, filters.view, inbox_ids, narrow)
            ids = list(base[start : start + PAGE_SIZE + 1])
        else:
            values = [*([user.pk] if not admin or filters.view == "mine" else []), *([] if admin else [inbox_ids])]
            ids = query(*values, *narrow.values())
    rows = load_rows(ids[:PAGE_SIZE])
    return rows, len(ids) > PAGE_SIZE


def _rows_query(ids: list[int]) -> Any:
    last = (
        Message.objects.filter(conversation_id=OuterRef("pk"))
        .exclude(direction=Message.Direction.INTERNAL)
        .order_by("-wa_timestamp", "-id")
    )
    return (
        Conversation.objects.filter(pk__in=ids)
        .select_related("inbox", "customer", "assignee")
        .annotate(preview=Subquery(last.values("text")[:1]), preview_type=Subquery(last.values("type")[:1]))
        .order_by()
    )


# load_rows' two reads, compiled once per process (conversations/querycache.py): every list
# page, every conversation page's column and every live round that pushes a row runs them.
_ROWS = CompiledQuery(_rows_query, [-987654321])
_ROW_LABELS = CompiledQuery(
    lambda ids: Label.objects.filter(conversations__in=ids).annotate(conversation_ref=F("conversations__id")),
    [-987654321],
)


def load_rows(ids: list[int]) -> list[Conversation]:
    """Conversations ``ids`` (already allowed for the user: they come from an access-checked
    query), in that order, with what the ``row`` partial shows: customer, inbox, assignee,
    the last message (its text, or its type's name) and ``row_labels``, the labels in name
    order. Two queries. The live socket renders a pushed row from this too."""
    if not ids:
        return []
    loaded = {row.pk: row for row in _ROWS(ids)}
    rows = [loaded[pk] for pk in ids if pk in loaded]
    labels: dict[int, list[Label]] = {}
    for label in _ROW_LABELS([row.pk for row in rows]) if rows else ():
        labels.setdefault(label.conversation_ref, []).append(label)
    for row in rows:
        row.preview_label = message_type_label(row.preview_type) if row.preview_type and not row.preview else ""
        row.row_labels = labels.get(row.pk, [])
    return rows


def list_context(request: HttpRequest) -> dict[str, Any]:
    """The list column (``console/list.html#list``) for this request's user and query string:
    any console page calls it to render the same column."""
    user = request.user
    supervisor = may_see_all(user)
    filters = parse_filters(request, supervisor=supervisor)
    options = _options(user, supervisor)
    conversations, has_next = _rows(user, filters, options)
    if filters.q:
        found = search.snippets(filters.q, conversations)
        for conversation in conversations:
            conversation.snippet = found.get(conversation.pk, "")
    match = getattr(request, "resolver_match", None)
    on_index = bool(match and match.view_name == "console:index")
    return {
        **counters_context(user),
        **options,
        "conversations": conversations,
        "filters": filters,
        "list_view": filters.view,
        "list_supervisor": supervisor,
        "statuses": Status.choices,
        "has_next": has_next,
        "has_previous": filters.page > 1,
        "next_query": filters.query(page=filters.page + 1),
        "previous_query": filters.query(page=filters.page - 1),
        "at_page_limit": filters.page >= MAX_PAGE and has_next,
        # Only the index page moves the address bar: on a conversation page the list swaps
        # beside it, and the address stays the conversation's.
        "list_push_url": "true" if on_index else "false",
        "now": timezone.now(),
    }


@require_GET
@login_required
def index(request: HttpRequest) -> HttpResponse:
    context = list_context(request)
    template = "console/list.html"
    # A history restore asks for the whole page even from htmx.
    if request.htmx and not request.htmx.history_restore_request:
        template = "console/list.html#list"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


urlpatterns: list[URLPattern] = [path("", index, name="index")]
