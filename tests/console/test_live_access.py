"""The live console's batched access rule (``access.who_may_see``) answers exactly what
``conversations_for`` and ``writable_conversations_for`` answer, user by user: every role,
status, assignee and closed-history case of a small helpdesk, walked exhaustively."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import User

from conversations import access
from conversations.models import Conversation, Customer, Inbox, Membership

Status = Conversation.Status


@pytest.fixture
def helpdesk(db: None) -> tuple[list[User], list[Conversation]]:
    loja = Inbox.objects.create(name="Loja", phone_number_id="WMS_A", app_secret="a")
    filial = Inbox.objects.create(name="Filial", phone_number_id="WMS_B", app_secret="b")
    users = {
        name: User.objects.create_user(name)
        for name in ("ana", "bruno", "renata", "olga", "nobody", "gone", "both", "root", "dead_root")
    }
    users["gone"].is_active = False
    users["gone"].save()
    users["root"].is_superuser = True
    users["root"].save()
    users["dead_root"].is_superuser = True
    users["dead_root"].is_active = False
    users["dead_root"].save()
    attendant, supervisor = Membership.Role.ATTENDANT, Membership.Role.SUPERVISOR
    for name, inbox, role in [
        ("ana", loja, attendant),
        ("bruno", loja, attendant),
        ("renata", loja, supervisor),
        ("olga", filial, attendant),
        ("gone", loja, supervisor),
        ("both", loja, attendant),
        ("both", filial, supervisor),
    ]:
        Membership.objects.create(user=users[name], inbox=inbox, role=role)
    conversations = []
    owners = [None, users["ana"], users["bruno"], users["olga"]]
    for n, (inbox, status, owner) in enumerate(itertools.product([loja, filial], list(Status), owners)):
        customer = Customer.objects.create(wa_id=f"55119{n:08d}", name=f"C{n}")
        conversations.append(Conversation.objects.create(inbox=inbox, customer=customer, status=status, assignee=owner))
    # Closed histories: a customer now in Loja's queue, one now Ana's, one now Bruno's, one
    # now with the bot in Filial, and one with nothing open.
    for n, (now_inbox, now_status, now_owner) in enumerate(
        [
            (loja, Status.QUEUED, None),
            (loja, Status.ASSIGNED, users["ana"]),
            (loja, Status.ASSIGNED, users["bruno"]),
            (filial, Status.BOT, None),
            (loja, Status.CLOSED, users["ana"]),
        ]
    ):
        customer = Customer.objects.create(wa_id=f"55118{n:08d}", name=f"H{n}")
        for old_inbox, old_owner in itertools.product([loja, filial], [None, users["ana"], users["bruno"]]):
            conversations.append(
                Conversation.objects.create(
                    inbox=old_inbox, customer=customer, status=Status.CLOSED, assignee=old_owner
                )
            )
        conversations.append(
            Conversation.objects.create(inbox=now_inbox, customer=customer, status=now_status, assignee=now_owner)
        )
    return list(users.values()), conversations


def test_who_may_see_answers_what_the_access_querysets_answer(helpdesk, django_assert_max_num_queries):
    users, conversations = helpdesk
    # given: what the access module's querysets say, user by user
    expected = {}
    for user in users:
        writable = set(access.writable_conversations_for(user).values_list("pk", flat=True))
        for pk in access.conversations_for(user).values_list("pk", flat=True):
            expected[(user.pk, pk)] = pk in writable
    # when: everyone at once
    with django_assert_max_num_queries(3):
        audience = access.who_may_see([u.pk for u in users], [c.pk for c in conversations])
    # then: the same pairs, the same write access, and some of each kind
    assert audience.allowed == expected
    assert any(expected.values()) and not all(expected.values())
    assert set(audience.updated) == {c.pk for c in conversations}
    # and with half the conversations loaded by the caller, the same again
    loaded = list(Conversation.objects.filter(pk__in=[c.pk for c in conversations[::2]]))
    again = access.who_may_see([u.pk for u in users], [c.pk for c in conversations], loaded=loaded)
    assert again.allowed == expected


def test_who_may_see_follows_a_membership_removed_a_moment_ago(helpdesk):
    users, conversations = helpdesk
    ana = next(u for u in users if u.username == "ana")
    ids = [c.pk for c in conversations]
    assert any(user == ana.pk for user, _ in access.who_may_see([ana.pk], ids).allowed)

    Membership.objects.filter(user=ana).delete()

    assert access.who_may_see([ana.pk], ids).allowed == {}


def test_who_may_see_follows_a_deactivated_account(helpdesk):
    users, conversations = helpdesk
    renata = next(u for u in users if u.username == "renata")
    ids = [c.pk for c in conversations]
    assert access.who_may_see([renata.pk], ids).allowed

    User.objects.filter(pk=renata.pk).update(is_active=False)

    assert access.who_may_see([renata.pk], ids).allowed == {}


def test_shared_counters_answer_what_the_access_rule_counts_for_each_user(helpdesk):
    from console.lists import counters_context, counters_from_tallies, live_tallies

    users, _conversations = helpdesk
    # given: one aggregate for everyone, and everyone's memberships as the live round reads them
    tallies = live_tallies()
    audience = access.who_may_see([u.pk for u in users], [])
    for user in users:
        # when
        shared = counters_from_tallies(
            tallies, user.pk, admin=user.pk in audience.admins, roles=audience.roles.get(user.pk, {})
        )
        # then: the counts of what the access rule lets this user see, counted by the database
        visible = access.conversations_for(user)
        expected = {
            "queue": visible.filter(status=Status.QUEUED).count(),
            "mine": visible.filter(status=Status.ASSIGNED, assignee=user).count(),
            "bot": visible.filter(status=Status.BOT).count(),
            "all": visible.live().count(),
        }
        counts = {counter["view"]: counter["count"] for counter in shared["counters"]}
        assert counts == {view: n for view, n in expected.items() if view in counts}, user.username
        assert ("all" in counts) == (access.is_admin(user) or access.supervises_any(user)), user.username
        assert shared == counters_context(user), user.username
    assert any(c["count"] for c in counters_context(users[0])["counters"])


def _socket(user: User, client_factory) -> object:
    from django.contrib.sessions.backends.db import SessionStore

    from console import live

    client = client_factory()
    client.force_login(user)
    session = SessionStore(client.session.session_key)
    return live.request_for({"user": user, "session": session, "headers": [], "path": "/ws/console/"})


def test_a_round_for_many_sockets_reads_access_once_for_all(helpdesk, settings, django_assert_max_num_queries):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from console import live

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    users, conversations = helpdesk
    by_name = {u.username: u for u in users}
    ids = {c.pk for c in conversations}

    def round_of(names: list[str]) -> tuple[int, list[str]]:
        items = [(_socket(by_name[name], Client), None, live.Batch(rows=set(ids), counters=True)) for name in names]
        live._shared.entries.clear()  # each round renders its rows afresh
        with CaptureQueriesContext(connection) as queries:
            out = live.render_batches(items)
        return len(queries), out

    # given / when: three sockets, then nine (the same people, three consoles each)
    few, out = round_of(["ana", "renata", "olga"])
    many, _ = round_of(["ana", "renata", "olga"] * 3)

    # then: the same queries for nine sockets as for three (sessions, access, rows, their
    # labels and handoffs, counters), and each sees only their own
    assert many == few <= 8
    for name, html in zip(["ana", "renata", "olga"], out, strict=True):
        visible = set(access.conversations_for(by_name[name]).values_list("pk", flat=True))
        shown = {pk for pk in ids if f'id="conversation-row-{pk}"' in html}
        assert shown == visible, name
        assert "console-counters" in html


def test_a_round_sends_nothing_to_a_socket_logged_out_elsewhere(helpdesk, settings):
    from django.test import Client

    from console import live

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    users, conversations = helpdesk
    renata = next(u for u in users if u.username == "renata")
    live_socket, gone_socket = _socket(renata, Client), _socket(renata, Client)
    gone_socket.session.delete()
    batch = {c.pk for c in conversations}

    out = live.render_batches(
        [(live_socket, None, live.Batch(rows=set(batch))), (gone_socket, None, live.Batch(rows=set(batch)))]
    )

    assert 'id="conversation-row-' in out[0]
    assert out[1] == ""
