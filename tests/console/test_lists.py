"""The console's lists (/console/): the queue, mine, with the bot, all; counters, filters,
pagination, the htmx partial, access, and a query budget per view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from console import lists
from conversations import access
from conversations.models import Conversation, Customer, Inbox, Label, Membership, Message

Status = Conversation.Status
URL = "/console/"


@pytest.fixture
def team(inbox: Inbox) -> SimpleNamespace:
    """An inbox with a supervisor and two attendants, another inbox with its own attendant."""
    other = Inbox.objects.create(name="Filial Norte", phone_number_id="PNID_B", app_secret="b-secret")
    people = SimpleNamespace(
        inbox=inbox,
        other=other,
        admin=User.objects.create_superuser("root"),
        supervisor=User.objects.create_user("renata", first_name="Renata"),
        ana=User.objects.create_user("ana", first_name="Ana"),
        bruno=User.objects.create_user("bruno", first_name="Bruno"),
        outsider=User.objects.create_user("olga", first_name="Olga"),
    )
    Membership.objects.create(user=people.supervisor, inbox=inbox, role=Membership.Role.SUPERVISOR)
    Membership.objects.create(user=people.ana, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.bruno, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.outsider, inbox=other, role=Membership.Role.ATTENDANT)
    return people


@pytest.fixture
def chat(inbox: Inbox) -> Callable[..., Conversation]:
    """A conversation with a real customer and messages, its last one ``minutes_ago``."""
    counter = iter(range(1, 10_000))

    def make(
        name: str = "Maria Silva",
        status: str = Status.QUEUED,
        *,
        assignee: Any = None,
        texts: tuple[str, ...] = ("Oi, tudo bem?", "Quero saber do meu pedido"),
        minutes_ago: int = 5,
        inbox: Inbox = inbox,
        phone: str | None = None,
    ) -> Conversation:
        n = next(counter)
        wa_id = phone or f"55119870{n:05d}"
        customer = Customer.objects.create(wa_id=wa_id, phone=f"+{wa_id}", name=name)
        last = timezone.now() - timedelta(minutes=minutes_ago)
        conversation = Conversation.objects.create(
            inbox=inbox,
            customer=customer,
            status=status,
            assignee=assignee,
            closed=last if status == Status.CLOSED else None,
            last_message=last,
            last_inbound=last,
        )
        for i, text in enumerate(texts):
            Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.IN,
                sender_kind=Message.SenderKind.CUSTOMER,
                type="text",
                text=text,
                content={"body": text},
                wamid=f"wamid.L{n}-{i}",
                wa_timestamp=last - timedelta(seconds=len(texts) - i),
            )
        return conversation

    return make


def rows(response: Any) -> list[int]:
    return [conversation.pk for conversation in response.context["conversations"]]


@pytest.mark.django_db
def test_it_requires_login(client: Any) -> None:
    # when
    response = client.get(URL)

    # then
    assert response.status_code == 302
    assert "/console/" in response["Location"]


@pytest.mark.django_db
def test_it_shows_the_queue_with_customer_inbox_and_waiting_time(
    client: Any, team: Any, chat: Any, english: None
) -> None:
    # given
    waiting = chat("João Araújo", texts=("Oi", "Vocês têm açúcar mascavo?"), minutes_ago=12)
    chat("Bot Person", Status.BOT)
    client.force_login(team.ana)

    # when
    response = client.get(URL)

    # then
    assert response.status_code == 200
    assert reverse("console:index") == URL
    assert rows(response) == [waiting.pk]
    body = response.content.decode()
    assert f'id="conversation-row-{waiting.pk}"' in body
    assert "João Araújo" in body
    assert "Test" in body  # the inbox
    assert "waiting 12\xa0minutes" in body
    assert "Vocês têm açúcar mascavo?" in body  # the last message
    assert 'data-slot="handoff"' in body
    assert 'id="console-counters"' in body
    assert body.startswith("<!DOCTYPE html>")


@pytest.mark.django_db
def test_it_puts_the_longest_waiting_first_in_the_queue(client: Any, team: Any, chat: Any) -> None:
    # given
    recent = chat(minutes_ago=1)
    oldest = chat(minutes_ago=30)
    middle = chat(minutes_ago=10)
    client.force_login(team.ana)

    # when
    response = client.get(URL, {"view": "queue"})

    # then
    assert rows(response) == [oldest.pk, middle.pk, recent.pk]


@pytest.mark.django_db
def test_it_lists_mine_and_with_the_bot(client: Any, team: Any, chat: Any) -> None:
    # given
    mine_old = chat(status=Status.ASSIGNED, assignee=team.ana, minutes_ago=20)
    mine_new = chat(status=Status.ASSIGNED, assignee=team.ana, minutes_ago=2)
    chat(status=Status.ASSIGNED, assignee=team.bruno)
    with_bot = chat(status=Status.BOT)
    chat(status=Status.CLOSED, assignee=team.ana)
    client.force_login(team.ana)

    # when
    mine = client.get(URL, {"view": "mine"})
    bot = client.get(URL, {"view": "bot"})

    # then
    assert rows(mine) == [mine_new.pk, mine_old.pk]
    assert rows(bot) == [with_bot.pk]


@pytest.mark.django_db
def test_it_gives_all_to_supervisors_and_not_to_attendants(client: Any, team: Any, chat: Any) -> None:
    # given
    queued = chat(minutes_ago=1)
    theirs = chat(status=Status.ASSIGNED, assignee=team.bruno, minutes_ago=2)
    closed = chat(status=Status.CLOSED, minutes_ago=3)
    chat(inbox=team.other, minutes_ago=4)

    # when
    client.force_login(team.supervisor)
    as_supervisor = client.get(URL, {"view": "all"})
    client.force_login(team.ana)
    as_attendant = client.get(URL, {"view": "all"})

    # then: the supervisor sees every status of their inbox, not the other inbox
    assert rows(as_supervisor) == [queued.pk, theirs.pk, closed.pk]
    assert [c["view"] for c in as_supervisor.context["counters"]] == ["queue", "mine", "bot", "all"]
    # the attendant gets the queue instead, and no "all" tab
    assert as_attendant.context["list_view"] == "queue"
    assert rows(as_attendant) == [queued.pk]
    assert [c["view"] for c in as_attendant.context["counters"]] == ["queue", "mine", "bot"]
    assert "?view=all" not in as_attendant.content.decode()


@pytest.mark.django_db
def test_it_gives_all_to_admins(client: Any, team: Any, chat: Any) -> None:
    # given
    here = chat(minutes_ago=2)
    there = chat(inbox=team.other, status=Status.CLOSED, minutes_ago=1)
    client.force_login(team.admin)

    # when
    response = client.get(URL, {"view": "all"})

    # then
    assert rows(response) == [there.pk, here.pk]


@pytest.mark.django_db
def test_it_never_shows_an_attendant_what_access_hides(client: Any, team: Any, chat: Any) -> None:
    # given: another inbox's queue and another attendant's conversation
    chat("Cliente da Filial", inbox=team.other)
    chat("Cliente do Bruno", Status.ASSIGNED, assignee=team.bruno)
    client.force_login(team.ana)

    # when
    bodies = [client.get(URL, {"view": view, "q": "Cliente"}).content.decode() for view in lists.VIEWS]
    bodies += [client.get(URL, {"view": "all", "inbox": team.other.pk}).content.decode()]

    # then
    for body in bodies:
        assert "Cliente da Filial" not in body
        assert "Cliente do Bruno" not in body


@pytest.mark.django_db
def test_it_counts_each_view(client: Any, team: Any, chat: Any) -> None:
    # given
    for _ in range(3):
        chat()
    chat(status=Status.BOT)
    chat(status=Status.ASSIGNED, assignee=team.ana)
    chat(status=Status.ASSIGNED, assignee=team.bruno)
    chat(status=Status.CLOSED)
    chat(inbox=team.other)

    # when
    client.force_login(team.supervisor)
    supervisor = {c["view"]: c["count"] for c in client.get(URL).context["counters"]}
    client.force_login(team.ana)
    ana = {c["view"]: c["count"] for c in client.get(URL).context["counters"]}

    # then: "all" counts the open conversations
    assert supervisor == {"queue": 3, "mine": 0, "bot": 1, "all": 6}
    assert ana == {"queue": 3, "mine": 1, "bot": 1}


@pytest.mark.django_db
def test_it_renders_the_counters_for_the_live_socket(team: Any, chat: Any) -> None:
    # given
    from django.template.loader import render_to_string

    chat()
    chat()

    # when
    html = render_to_string("console/list.html#counters", lists.counters_context(team.ana))

    # then
    assert html.strip().startswith('<ul id="console-counters"')
    assert '<span class="console-tabs__count">2</span>' in html


@pytest.mark.django_db
def test_it_filters_by_inbox_status_attendant_label_and_date(client: Any, team: Any, chat: Any) -> None:
    # given: the supervisor also supervises the other inbox
    Membership.objects.create(user=team.supervisor, inbox=team.other, role=Membership.Role.SUPERVISOR)
    north = chat(inbox=team.other, minutes_ago=1)
    bruno = chat(status=Status.ASSIGNED, assignee=team.bruno, minutes_ago=2)
    old = chat(status=Status.CLOSED, minutes_ago=60 * 24 * 10)
    urgent = Label.objects.create(name="Urgente")
    old.labels.add(urgent)
    client.force_login(team.supervisor)
    ten_days_ago = (timezone.localdate() - timedelta(days=10)).isoformat()

    # when
    by_inbox = client.get(URL, {"view": "all", "inbox": team.other.pk})
    by_status = client.get(URL, {"view": "all", "status": "assigned"})
    by_attendant = client.get(URL, {"view": "all", "attendant": team.bruno.pk})
    by_label = client.get(URL, {"view": "all", "label": urgent.pk})
    by_until = client.get(URL, {"view": "all", "until": ten_days_ago})
    by_since = client.get(URL, {"view": "all", "since": timezone.localdate().isoformat()})

    # then
    assert rows(by_inbox) == [north.pk]
    assert rows(by_status) == [bruno.pk]
    assert rows(by_attendant) == [bruno.pk]
    assert rows(by_label) == [old.pk]
    assert rows(by_until) == [old.pk]
    assert rows(by_since) == [north.pk, bruno.pk]


@pytest.mark.django_db
def test_it_answers_the_same_through_its_compiled_queries_and_the_orm(
    client: Any, team: Any, chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: conversations in every status, two inboxes, a label, a page and a half of them
    Membership.objects.create(user=team.supervisor, inbox=team.other, role=Membership.Role.SUPERVISOR)
    urgent = Label.objects.create(name="Urgente")
    for n in range(40):
        status = [Status.QUEUED, Status.BOT, Status.ASSIGNED, Status.CLOSED][n % 4]
        conversation = chat(
            f"Cliente {n}",
            status,
            inbox=team.other if n % 3 == 0 else team.inbox,
            assignee=team.bruno if status in (Status.ASSIGNED, Status.CLOSED) else None,
            minutes_ago=n * 7,
        )
        if n % 5 == 0:
            conversation.labels.add(urgent)
    today = timezone.localdate().isoformat()
    queries = [
        {"view": view, **narrow, **page}
        for view in ("queue", "mine", "bot", "all")
        for narrow in ({}, {"status": "closed", "label": urgent.pk}, {"inbox": team.other.pk, "since": today})
        for page in ({}, {"page": 2})
    ]

    def answers(user: User) -> list[list[int]]:
        client.force_login(user)
        return [rows(client.get(URL, query)) for query in queries]

    # when: compiled (the default), then with no compiled shape allowed
    compiled = {who: answers(getattr(team, who)) for who in ("supervisor", "bruno", "admin")}
    monkeypatch.setattr(lists, "PAGE_SHAPES", 0)
    monkeypatch.setattr(lists, "_PAGE_IDS", {})
    plain = {who: answers(getattr(team, who)) for who in ("supervisor", "bruno", "admin")}

    # then
    assert compiled == plain
    assert any(len(answer) == 25 for answer in compiled["supervisor"])  # a full first page was compared


@pytest.mark.django_db
def test_it_ignores_filters_outside_the_users_options(client: Any, team: Any, chat: Any) -> None:
    # given: a label of the other inbox and a bad date
    mine = chat()
    foreign = Label.objects.create(inbox=team.other, name="Deles")
    client.force_login(team.ana)

    # when
    response = client.get(URL, {"inbox": team.other.pk, "label": foreign.pk, "since": "ontem", "page": "x"})

    # then: nothing is narrowed, nothing leaks, no error
    assert response.status_code == 200
    assert rows(response) == [mine.pk]
    assert "Deles" not in response.content.decode()


@pytest.mark.django_db
def test_it_paginates_without_counting_everything(
    client: Any, team: Any, chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setattr(lists, "PAGE_SIZE", 2)
    made = [chat(status=Status.BOT, minutes_ago=m) for m in range(5)]
    client.force_login(team.ana)

    # when
    pages = [client.get(URL, {"view": "bot", "page": page}) for page in (1, 2, 3)]

    # then
    assert [rows(page) for page in pages] == [[made[0].pk, made[1].pk], [made[2].pk, made[3].pk], [made[4].pk]]
    assert [page.context["has_next"] for page in pages] == [True, True, False]
    assert 'href="/console/?view=bot&amp;page=2"' in pages[0].content.decode()
    assert 'href="/console/?view=bot"' in pages[1].content.decode()  # "previous" is page 1


@pytest.mark.django_db
def test_it_stops_offsets_at_the_page_limit(client: Any, team: Any, chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setattr(lists, "PAGE_SIZE", 1)
    monkeypatch.setattr(lists, "MAX_PAGE", 2)
    for m in range(4):
        chat(status=Status.BOT, minutes_ago=m)
    client.force_login(team.ana)

    # when
    response = client.get(URL, {"view": "bot", "page": 99})

    # then
    assert response.context["filters"].page == 2
    assert response.context["at_page_limit"] is True
    assert "page=3" not in response.content.decode()


@pytest.mark.django_db
def test_it_answers_htmx_with_the_list_partial(client: Any, team: Any, chat: Any) -> None:
    # given
    conversation = chat()
    client.force_login(team.ana)

    # when
    partial = client.get(URL, {"view": "queue"}, HTTP_HX_REQUEST="true")
    restore = client.get(URL, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")

    # then
    body = partial.content.decode()
    assert body.lstrip().startswith('<section id="console-list"')
    assert f'id="conversation-row-{conversation.pk}"' in body
    assert "<html" not in body
    assert "HX-Request" in partial["Vary"]
    assert restore.content.decode().startswith("<!DOCTYPE html>")


@pytest.mark.django_db
def test_it_escapes_customer_text(client: Any, team: Any, chat: Any) -> None:
    # given
    chat("<script>alert(1)</script>", texts=("<img src=x onerror=alert(1)>",))
    client.force_login(team.ana)

    # when
    body = client.get(URL).content.decode()

    # then
    assert "<script>alert(1)</script>" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


@pytest.mark.django_db
def test_it_masks_the_phone_of_a_customer_without_a_name(client: Any, team: Any, chat: Any) -> None:
    # given
    chat("", phone="5511987654321")
    client.force_login(team.ana)

    # when
    body = client.get(URL).content.decode()

    # then
    assert "•••• 4321" in body
    assert "98765" not in body


@pytest.mark.django_db
def test_it_gives_other_console_pages_the_same_column(team: Any, chat: Any) -> None:
    # given: a request for some other console page, with a list query string
    conversation = chat()
    request = RequestFactory().get("/console/c/1/", {"view": "queue"})
    request.user = team.ana

    # when
    context = lists.list_context(request)

    # then: the column renders, and swapping it does not move the address bar
    assert [c.pk for c in context["conversations"]] == [conversation.pk]
    assert context["list_push_url"] == "false"


@pytest.mark.django_db
@pytest.mark.parametrize(("view", "who"), [("queue", "ana"), ("mine", "ana"), ("bot", "ana"), ("all", "supervisor")])
def test_it_keeps_each_list_within_its_query_budget(
    client: Any, team: Any, chat: Any, django_assert_max_num_queries: Any, view: str, who: str
) -> None:
    # given: many rows with labels, messages and assignees (no query per row)
    urgent = Label.objects.create(name="Urgente")
    for i in range(12):
        status = {"queue": Status.QUEUED, "mine": Status.ASSIGNED, "bot": Status.BOT, "all": Status.CLOSED}[view]
        conversation = chat(f"Cliente {i}", status, assignee=team.ana if view in ("mine", "all") else None)
        conversation.labels.add(urgent)
    user = getattr(team, who)
    client.force_login(user)
    client.get(URL)  # session and language warm
    factory = RequestFactory()

    # when / then: the list column itself: role, options (inboxes, labels, attendants for a
    # supervisor), the page's ids, its rows, their labels, the counters; a search adds the
    # snippets and, on PostgreSQL, the planner's estimate and the matching ids
    # (memberships read once per request, as the middleware has it)
    request = factory.get(URL, {"view": view})
    request.user = user
    with access.remembering_roles(), django_assert_max_num_queries(8):
        context = lists.list_context(request)
    assert len(context["conversations"]) == 12
    request = factory.get(URL, {"view": view, "q": "Cliente"})
    request.user = user
    with access.remembering_roles(), django_assert_max_num_queries(11):
        context = lists.list_context(request)
    assert len(context["conversations"]) == 12
    # and the whole page, with the session, the user and what the frame adds (2FA devices, presence)
    with django_assert_max_num_queries(17):
        response = client.get(URL, {"view": view, "q": "Cliente"})
    assert len(rows(response)) == 12


@pytest.mark.django_db
def test_it_names_the_type_of_a_last_message_without_text(client: Any, team: Any, chat: Any, english: None) -> None:
    # given: the customer's last message is an image without caption, and an internal note after it
    conversation = chat("Maria", texts=("Oi",))
    for i, (direction, kind, type_, text) in enumerate(
        [("in", "customer", "image", ""), ("internal", "attendant", "note", "nota interna secreta")]
    ):
        Message.objects.create(
            conversation=conversation,
            direction=direction,
            sender_kind=kind,
            type=type_,
            text=text,
            wamid=f"wamid.IMG-{i}" if direction == "in" else None,
            wa_timestamp=timezone.now() + timedelta(seconds=i),
        )
    client.force_login(team.ana)

    # when
    body = client.get(URL).content.decode()

    # then: internal notes never show in the list
    assert '<span class="console-row__preview console-row__preview--type">Image</span>' in body
    assert "nota interna secreta" not in body


@pytest.mark.django_db
def test_it_loads_rows_for_the_live_socket_in_the_given_order(team: Any, chat: Any) -> None:
    # given
    first, second = chat(), chat()

    # when
    rows = lists.load_rows([second.pk, first.pk])

    # then
    assert [row.pk for row in rows] == [second.pk, first.pk]
    assert rows[0].preview == "Quero saber do meu pedido"


@pytest.mark.django_db
def test_it_keeps_the_filters_in_the_page_links(
    client: Any, team: Any, chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: filters whose ids may be 1
    monkeypatch.setattr(lists, "PAGE_SIZE", 1)
    label = Label.objects.create(name="Urgente")
    for m in range(3):
        chat(status=Status.BOT, minutes_ago=m).labels.add(label)
    client.force_login(team.supervisor)
    query = {"view": "all", "inbox": team.inbox.pk, "label": label.pk, "q": "Maria", "since": "2026-01-01"}

    # when
    page = client.get(URL, {**query, "page": 2})

    # then
    body = page.content.decode()
    expected = f"view=all&amp;q=Maria&amp;inbox={team.inbox.pk}&amp;label={label.pk}&amp;since=2026-01-01"
    assert f'href="/console/?{expected}&amp;page=3"' in body
    assert f'href="/console/?{expected}"' in body
