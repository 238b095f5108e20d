"""The conversation page: who may open it, pages of history, the header's window, the customer
panel (masked phones, earlier conversations), read receipts, and its query budget."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console import timeline
from conversations.models import Conversation, Customer, Message
from tests.console.actions_support import HTMX, login, make_conversation, team  # noqa: F401

pytest_plugins = ["tests.conftest_graph"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Read receipts are remembered in the cache (Redis db of this test run): start empty.
    cache.clear()


def _url(conversation: Conversation, **query: object) -> str:
    url = reverse("console:conversation", args=[conversation.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def _inbound(conversation: Conversation, n: int = 1, *, at=None, **fields) -> list[Message]:
    at = at or timezone.now() - timedelta(minutes=30)
    rows = [
        Message(
            **{
                "conversation": conversation,
                "direction": Message.Direction.IN,
                "sender_kind": Message.SenderKind.CUSTOMER,
                "type": "text",
                "text": f"mensagem {i}",
                "wamid": f"wamid.{conversation.pk}.{i}.{at.timestamp()}",
                "wa_timestamp": at + timedelta(seconds=i),
                **fields,
            }
        )
        for i in range(n)
    ]
    return Message.objects.bulk_create(rows)


def _shown_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li id="message-(\d+)"', html)]


# --- Access -------------------------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    _inbound(conversation)
    # when
    response = Client().get(_url(conversation))
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_answers_404_to_an_attendant_of_another_inbox(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    _inbound(conversation, text="segredo")
    # when
    response = login(team.outsider).get(_url(conversation))
    # then
    assert response.status_code == 404
    assert b"segredo" not in response.content and b"Maria Silva" not in response.content


def test_it_answers_404_to_attendant_b_on_attendant_as_conversation(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    _inbound(conversation, text="segredo")
    # when
    response = login(team.bruno).get(_url(conversation))
    # then
    assert response.status_code == 404
    assert b"segredo" not in response.content


def test_it_answers_404_for_a_message_cursor_of_another_conversation(team, login, make_conversation) -> None:  # noqa: F811
    # given
    mine = make_conversation()
    foreign = _inbound(make_conversation(inbox=team.other_inbox))[0]
    # when
    response = login(team.ana).get(_url(mine, before=foreign.pk), **HTMX)
    bad = login(team.ana).get(_url(mine, before="x"), **HTMX)
    # then
    assert (response.status_code, bad.status_code) == (404, 404)


def test_it_lets_an_attendant_read_the_closed_history_of_a_customer_they_serve(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given: Ana's closed conversation; the same customer waits in the queue now
    closed = make_conversation(status=Conversation.Status.CLOSED, assignee=team.ana, resolution="Trocou o produto")
    _inbound(closed, text="histórico")
    waiting = make_conversation(customer=closed.customer)
    # when
    html = login(team.bruno).get(_url(waiting)).content.decode()
    old = login(team.bruno).get(_url(closed))
    # then: listed as an earlier conversation, readable, without the notes form
    assert reverse("console:conversation", args=[closed.pk]) in html
    assert "Trocou o produto" in html
    assert old.status_code == 200
    assert "histórico" in old.content.decode()
    assert 'id="customer-notes"' not in old.content.decode()


# --- Pages of history ---------------------------------------------------------------------------------


def test_it_shows_the_newest_page_and_loads_older_ones_before_it(team, login, make_conversation) -> None:  # noqa: F811
    # given: 120 messages, several sharing a timestamp (the keyset breaks ties by id)
    conversation = make_conversation()
    at = timezone.now() - timedelta(hours=2)
    messages = _inbound(conversation, 60, at=at) + _inbound(conversation, 60, at=at + timedelta(seconds=30))
    ordered = sorted(messages, key=lambda m: (m.wa_timestamp, m.pk))
    client = login(team.ana)
    # when
    first = client.get(_url(conversation)).content.decode()
    oldest_first = ordered[-timeline.PAGE_SIZE]
    second = client.get(_url(conversation, before=oldest_first.pk), **HTMX)
    oldest_second = ordered[-2 * timeline.PAGE_SIZE]
    third = client.get(_url(conversation, before=oldest_second.pk), **HTMX)
    # then: pages in order, oldest first within a page, no gap and no repeat
    assert _shown_ids(first) == [m.pk for m in ordered[-50:]]
    assert f'hx-get="{_url(conversation, before=oldest_first.pk)}"' in first
    assert 'hx-trigger="intersect once"' in first
    second_html = second.content.decode()
    assert "<html" not in second_html
    assert _shown_ids(second_html) == [m.pk for m in ordered[-100:-50]]
    third_html = third.content.decode()
    assert _shown_ids(third_html) == [m.pk for m in ordered[:-100]]
    assert "Conversation started on" in third_html
    assert "hx-get" not in third_html.split('<li id="message-')[0]


def test_it_serves_an_older_page_as_a_whole_page_without_javascript(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    messages = _inbound(conversation, 60)
    # when
    response = login(team.ana).get(_url(conversation, before=messages[10].pk))
    # then
    html = response.content.decode()
    assert "<html" in html
    assert _shown_ids(html) == [m.pk for m in messages[:10]]


def test_it_leaves_applied_reactions_edits_and_revokes_out_of_the_timeline(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given: one applied reaction, one still waiting for its message
    conversation = make_conversation()
    text = _inbound(conversation)[0]
    common = {"direction": Message.Direction.IN, "sender_kind": Message.SenderKind.CUSTOMER, "type": "reaction"}
    applied = Message.objects.create(conversation=conversation, content={"emoji": "👍"}, **common)
    waiting = Message.objects.create(
        conversation=conversation, content={"emoji": "🎉"}, action_pending=True, target_wamid="wamid.X", **common
    )
    # when
    html = login(team.ana).get(_url(conversation)).content.decode()
    # then
    assert _shown_ids(html) == [text.pk, waiting.pk]
    assert applied.pk not in _shown_ids(html)
    assert "Reacted 🎉 to a message that is not in this history." in html


# --- Header -------------------------------------------------------------------------------------------


def test_it_shows_the_time_left_in_the_window_with_its_deadline_for_the_script(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given
    last = timezone.now() - timedelta(hours=20, minutes=30)
    conversation = make_conversation(last_inbound=last)
    # when
    html = login(team.ana).get(_url(conversation)).content.decode()
    # then
    deadline = timezone.localtime(last + timedelta(hours=24))
    assert f'data-deadline="{deadline.replace(microsecond=0).isoformat()}"' in html
    assert f"24-hour window open until {deadline:%a %H:%M}." in html
    assert ">3\xa0hours, 29\xa0minutes</time>" in html


def test_it_says_when_the_window_closed(team, login, make_conversation) -> None:  # noqa: F811
    # given
    last = timezone.now() - timedelta(days=2)
    conversation = make_conversation(last_inbound=last)
    never = make_conversation(last_inbound=None)
    client = login(team.ana)
    # when
    closed_html = client.get(_url(conversation)).content.decode()
    never_html = client.get(_url(never)).content.decode()
    # then
    closes = timezone.localtime(last + timedelta(hours=24))
    assert "The 24-hour window closed at" in closed_html
    assert "data-deadline" not in closed_html
    assert f"{closes:%m/%d/%Y}" in closed_html
    assert "The customer has not written yet: only approved templates can be sent." in never_html


def test_it_shows_status_inbox_and_owner(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    # when
    html = login(team.ana).get(_url(conversation)).content.decode()
    # then
    header = html[
        html.index('id="conversation-header"') : html.index("</header>", html.index('id="conversation-header"'))
    ]
    assert '<span class="conv-status conv-status--assigned">With an attendant</span>' in header
    assert "<dd>Test</dd>" in header
    assert "<dd>Ana</dd>" in header


# --- Customer panel -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "full", "masked"),
    [
        ("+5511987654321", "+55 11 98765-4321", "+55 11 9****-4321"),
        ("+551133334444", "+55 11 3333-4444", "+55 11 3***-4444"),
        ("+16505551234", "+1 650-555-1234", "+1 650-5**-1234"),
        ("+447911123456", "+44 7911 123456", "+44 7911 1**456"),
    ],
)
def test_it_masks_a_phone_for_those_who_may_not_see_it(phone: str, full: str, masked: str) -> None:
    # given
    customer = Customer(phone=phone, wa_id=phone.lstrip("+"))
    # when / then
    assert timeline.display_phone(customer, full=True) == full
    assert timeline.display_phone(customer, full=False) == masked


def test_it_masks_a_number_it_cannot_parse_and_names_a_username_only_customer() -> None:
    assert timeline.display_phone(Customer(phone="12345678"), full=False) == "123**678"
    assert timeline.display_phone(Customer(user_id="BR.1", username="maria"), full=False) == "@maria"
    assert timeline.display_phone(Customer(user_id="BR.1"), full=False) == ""


def test_it_shows_the_whole_number_only_to_admins_and_the_inboxs_supervisors(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given
    conversation = make_conversation()
    conversation.customer.phone, conversation.customer.wa_id = "+5511987654321", "5511987654321"
    conversation.customer.save()
    # when
    pages = {
        who: login(getattr(team, who)).get(_url(conversation)).content.decode()
        for who in ("ana", "supervisor", "admin")
    }
    # then
    assert "+55 11 9****-4321" in pages["ana"] and "98765-4321" not in pages["ana"]
    assert "+55 11 98765-4321" in pages["supervisor"]
    assert "+55 11 98765-4321" in pages["admin"]
    assert timeline.may_see_phone(team.ana, team.inbox.pk) is False
    assert timeline.may_see_phone(team.supervisor, team.other_inbox.pk) is False


def test_it_decides_the_phone_for_the_viewer_in_a_fragment_rendered_without_the_page(
    team,  # noqa: F811
    make_conversation,  # noqa: F811
    rf,
) -> None:
    # given: the header partial as the live socket renders it (a request, no phone_full)
    from django.template.loader import render_to_string

    conversation = make_conversation()
    conversation.customer.phone = "+5511987654321"
    conversation.customer.save()

    def header_for(user) -> str:
        request = rf.get("/")
        request.user = user
        context = {"conversation": conversation, "request": request}
        return render_to_string("console/conversation.html#header", context, request)

    # when / then
    assert "+55 11 98765-4321" in header_for(team.supervisor)
    assert "+55 11 9****-4321" in header_for(team.ana)
    assert "+55 11 9****-4321" in render_to_string("console/conversation.html#header", {"conversation": conversation})


def test_it_lists_only_the_customers_earlier_conversations_this_user_may_see(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given: the customer's earlier conversation here and one in another inbox
    current = make_conversation()
    earlier = make_conversation(status=Conversation.Status.CLOSED, customer=current.customer, resolution="Resolvido")
    elsewhere = make_conversation(
        status=Conversation.Status.CLOSED, customer=current.customer, inbox=team.other_inbox, resolution="Outra filial"
    )
    stranger = make_conversation(status=Conversation.Status.CLOSED, resolution="Outro cliente")
    # when
    ana = login(team.ana).get(_url(current)).content.decode()
    admin = login(team.admin).get(_url(current)).content.decode()
    # then
    assert reverse("console:conversation", args=[earlier.pk]) in ana
    assert "Outra filial" not in ana and reverse("console:conversation", args=[elsewhere.pk]) not in ana
    assert "Outra filial" in admin
    assert "Outro cliente" not in admin and reverse("console:conversation", args=[stranger.pk]) not in admin


def test_it_shows_labels_and_notes_and_offers_to_edit_the_notes(team, login, make_conversation) -> None:  # noqa: F811
    # given
    from conversations.models import Label

    conversation = make_conversation()
    conversation.labels.add(Label.objects.create(name="VIP", inbox=team.inbox))
    conversation.customer.notes = "Prefere ser chamada de Dona Maria"
    conversation.customer.save()
    # when
    html = login(team.ana).get(_url(conversation)).content.decode()
    # then
    panel = html[html.index('id="customer-panel"') :]
    assert "VIP" in panel
    assert f'action="{reverse("console:customer-notes", args=[conversation.pk])}"' in panel
    assert "Prefere ser chamada de Dona Maria" in panel


# --- Read receipts ----------------------------------------------------------------------------------------


def _reads(fake_graph) -> list[str]:
    return [r.json["message_id"] for r in fake_graph.calls("messages") if (r.json or {}).get("status") == "read"]


def test_it_marks_the_latest_customer_message_read_once_when_its_attendant_opens_it(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
    fake_graph,
    django_capture_on_commit_callbacks,
) -> None:
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    messages = _inbound(conversation, 3)
    client = login(team.ana)
    # when: opened, refreshed, an older page loaded
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.get(_url(conversation)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(conversation, before=messages[2].pk), **HTMX)
    # then: one receipt, for the latest message (WhatsApp marks the earlier ones with it)
    assert _reads(fake_graph) == [messages[2].wamid]


def test_it_marks_a_newer_message_read_on_the_next_visit(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
    fake_graph,
    django_capture_on_commit_callbacks,
) -> None:
    # given
    conversation = make_conversation(status=Conversation.Status.QUEUED)
    first = _inbound(conversation)[0]
    client = login(team.ana)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(conversation))
    later = _inbound(conversation, at=timezone.now() - timedelta(minutes=1))[0]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(conversation))
    # then
    assert _reads(fake_graph) == [first.wamid, later.wamid]


@pytest.mark.parametrize(
    ("who", "status", "holder", "setting"),
    [
        ("supervisor", Conversation.Status.ASSIGNED, "ana", True),  # watching Ana's conversation
        ("admin", Conversation.Status.ASSIGNED, "ana", True),
        ("ana", Conversation.Status.BOT, None, True),  # the bot answers (and marks) it
        ("ana", Conversation.Status.ASSIGNED, "ana", False),  # the inbox sends no read receipts
    ],
)
def test_it_sends_no_read_receipt_for_a_reader_who_does_not_answer(
    who: str,
    status: str,
    holder: str | None,
    setting: bool,
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
    fake_graph,
    django_capture_on_commit_callbacks,
) -> None:
    # given
    team.inbox.read_receipts = setting
    team.inbox.save()
    conversation = make_conversation(status=status, assignee=getattr(team, holder) if holder else None)
    _inbound(conversation)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = login(getattr(team, who)).get(_url(conversation))
    # then
    assert response.status_code == 200
    assert _reads(fake_graph) == []


def test_it_sends_no_read_receipt_while_sending_is_refused_and_tries_again_later(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
    fake_graph,
    django_capture_on_commit_callbacks,
) -> None:
    # given: the inbox is paused (sending refused), and another conversation's window closed
    expired = make_conversation(
        status=Conversation.Status.ASSIGNED, assignee=team.ana, last_inbound=timezone.now() - timedelta(days=2)
    )
    old = _inbound(expired, at=timezone.now() - timedelta(days=2))[0]
    with django_capture_on_commit_callbacks(execute=True):
        login(team.ana).get(_url(expired))
    assert cache.get(timeline.read_receipt_key(old.pk)) is None
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    message = _inbound(conversation)[0]
    team.inbox.sending_paused_reason = "token expirado"
    team.inbox.save()
    client = login(team.ana)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(conversation))
    assert _reads(fake_graph) == []
    # when: sending resumes
    team.inbox.sending_paused_reason = ""
    team.inbox.save()
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(conversation))
    # then
    assert _reads(fake_graph) == [message.wamid]


# --- Query budget -------------------------------------------------------------------------------------------


def _mixed_messages(conversation: Conversation, team, n: int) -> None:  # noqa: F811
    at = timezone.now() - timedelta(hours=1)
    rows = []
    for i in range(n):
        kind = i % 5
        fields = {
            "conversation": conversation,
            "wa_timestamp": at + timedelta(seconds=i),
            "type": "text",
            "text": f"m{i}",
            "direction": Message.Direction.IN,
            "sender_kind": Message.SenderKind.CUSTOMER,
            "wamid": f"wamid.Q.{conversation.pk}.{i}",
        }
        if kind == 1:
            fields.update(direction=Message.Direction.OUT, sender_kind=Message.SenderKind.ATTENDANT, sender=team.ana)
            fields.update(status=Message.Status.DELIVERED)
        elif kind == 2:
            fields.update(type="image", media="whatsapp/x.jpg", media_status=Message.MediaStatus.DONE)
        elif kind == 3:
            fields.update(direction=Message.Direction.INTERNAL, sender_kind=Message.SenderKind.ATTENDANT)
            fields.update(type="note", sender=team.bruno, wamid=None)
        elif kind == 4:
            fields.update(reactions={"customer": "👍"}, edited=at, edit_history=[{"text": "x", "replaced_at": "y"}])
        rows.append(Message(**fields))
    created = Message.objects.bulk_create(rows)
    # Replies quote earlier messages (each would cost a query without the join).
    for reply, quoted in zip(created[5::5], created[::5], strict=False):
        reply.reply_to = quoted
    Message.objects.bulk_update(created[5::5], ["reply_to"])


def test_it_renders_the_page_in_the_same_number_of_queries_whatever_its_length(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
    django_assert_max_num_queries,
    django_assert_num_queries,
) -> None:
    # given: two conversations, one short, one longer than a page
    short = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    long = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    _mixed_messages(short, team, 5)
    _mixed_messages(long, team, 80)
    client = login(team.ana)
    client.get(_url(short))  # warm up the session and the read-receipt cache
    client.get(_url(long))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert client.get(_url(short)).status_code == 200
    # when / then: the same count for 50 shown messages as for 5, and a modest total
    with django_assert_num_queries(len(few.captured_queries)):
        assert client.get(_url(long)).status_code == 200
    with django_assert_max_num_queries(20):
        client.get(_url(long))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_sends_one_read_receipt_when_two_tabs_open_at_once(
    team,  # noqa: F811
    make_conversation,  # noqa: F811
    fake_graph,
    monkeypatch,
) -> None:
    # given: the attendant opens the conversation in four tabs at the same moment, and the
    # cache answers reads slowly (a check-then-set would let every tab through)
    import threading
    import time

    from django.db import connection

    class SlowReads:
        def __getattr__(self, name: str):
            return getattr(cache, name)

        def get(self, *args, **kwargs):
            time.sleep(0.2)
            return cache.get(*args, **kwargs)

    monkeypatch.setattr(timeline, "cache", SlowReads())

    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    message = _inbound(conversation)[0]
    fresh = Conversation.objects.select_related("inbox", "customer").get(pk=conversation.pk)
    start = threading.Barrier(4)
    marked: list[Message | None] = []

    def open_tab() -> None:
        try:
            start.wait()
            marked.append(timeline.mark_read_on_open(team.ana, fresh))
        finally:
            connection.close()

    # when
    tabs = [threading.Thread(target=open_tab) for _ in range(4)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    # then
    assert [m.pk for m in marked if m is not None] == [message.pk]
    assert _reads(fake_graph) == [message.wamid]
