"""The access module: who sees and acts on which conversations, customers, messages and inboxes,
for every role, every ownership state and another inbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from conversations import access
from conversations.models import Conversation, Customer, Inbox, Membership, Message

Status = Conversation.Status

USERS = ["admin", "supervisor", "att1", "att2", "other_inbox", "staff_no_inbox", "inactive_admin", "anonymous"]

# Conversations of inbox A unless named b_*. "served" is the queued customer's earlier, closed
# conversation (last held by att2).
VISIBLE = {
    "admin": {"bot", "queued", "mine", "theirs", "closed_mine", "closed_theirs", "closed_served", "b_queued"},
    "supervisor": {"bot", "queued", "mine", "theirs", "closed_mine", "closed_theirs", "closed_served"},
    "att1": {"bot", "queued", "mine", "closed_mine", "closed_served"},
    "att2": {"bot", "queued", "theirs", "closed_theirs", "closed_served"},
    "other_inbox": {"b_queued"},
    "staff_no_inbox": set(),
    "inactive_admin": set(),
    "anonymous": set(),
}
WRITABLE = {
    **VISIBLE,
    # att1 reads the closed history of a customer in the queue, but it was att2's.
    "att1": {"bot", "queued", "mine", "closed_mine"},
}
INBOXES = {
    "admin": {"A", "B"},
    "supervisor": {"A"},
    "att1": {"A"},
    "att2": {"A"},
    "other_inbox": {"B"},
    "staff_no_inbox": set(),
    "inactive_admin": set(),
    "anonymous": set(),
}


@pytest.fixture
def world(inbox: Inbox) -> dict[str, Any]:
    inbox_b = Inbox.objects.create(name="Filial", phone_number_id="PNID_B", app_secret="b-secret")
    users: dict[str, Any] = {
        "admin": User.objects.create_superuser("admin"),
        "inactive_admin": User.objects.create_superuser("gone", is_active=False),
        "supervisor": User.objects.create_user("sup", is_staff=True),
        "att1": User.objects.create_user("att1", is_staff=True),
        "att2": User.objects.create_user("att2"),
        "other_inbox": User.objects.create_user("other"),
        "staff_no_inbox": User.objects.create_user("staff", is_staff=True),
        "anonymous": AnonymousUser(),
    }
    Membership.objects.create(user=users["supervisor"], inbox=inbox, role=Membership.Role.SUPERVISOR)
    Membership.objects.create(user=users["att1"], inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=users["att2"], inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=users["other_inbox"], inbox=inbox_b, role=Membership.Role.ATTENDANT)

    def customer(n: int) -> Customer:
        return Customer.objects.create(wa_id=f"55119000000{n:02d}", name=f"Cliente {n}")

    def conversation(box: Inbox, who: Customer, status: str, assignee: Any = None) -> Conversation:
        closed = timezone.now() if status == Status.CLOSED else None
        return Conversation.objects.create(inbox=box, customer=who, status=status, assignee=assignee, closed=closed)

    c = {n: customer(n) for n in range(1, 7)}
    conversations = {
        "bot": conversation(inbox, c[1], Status.BOT),
        "queued": conversation(inbox, c[2], Status.QUEUED),
        "mine": conversation(inbox, c[3], Status.ASSIGNED, users["att1"]),
        "theirs": conversation(inbox, c[4], Status.ASSIGNED, users["att2"]),
        "closed_mine": conversation(inbox, c[5], Status.CLOSED, users["att1"]),
        "closed_theirs": conversation(inbox, c[6], Status.CLOSED, users["att2"]),
        "closed_served": conversation(inbox, c[2], Status.CLOSED, users["att2"]),
        "b_queued": conversation(inbox_b, c[1], Status.QUEUED),
    }
    messages = {
        name: Message.objects.create(
            conversation=conv, direction=Message.Direction.IN, sender_kind="customer", type="text", text=name
        )
        for name, conv in conversations.items()
    }
    return {
        "users": users,
        "conversations": conversations,
        "messages": messages,
        "inboxes": {"A": inbox, "B": inbox_b},
    }


def names(world: dict[str, Any], rows: Any, kind: str = "conversations") -> set[str]:
    by_pk = {obj.pk: name for name, obj in world[kind].items()}
    return {by_pk[row.pk] for row in rows}


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_lists_exactly_the_conversations_each_role_may_see(world, who) -> None:
    # when
    visible = access.conversations_for(world["users"][who])

    # then
    assert names(world, visible) == VISIBLE[who]


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_lists_exactly_the_conversations_each_role_may_act_on(world, who) -> None:
    # when
    writable = access.writable_conversations_for(world["users"][who])

    # then
    assert names(world, writable) == WRITABLE[who]


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_answers_can_act_like_the_queryset_for_every_conversation(world, who) -> None:
    user = world["users"][who]

    # when
    answers = {name for name, conv in world["conversations"].items() if access.can_act(user, conv)}

    # then
    assert answers == WRITABLE[who]


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_gets_a_conversation_for_reading_or_answers_404(world, who) -> None:
    user = world["users"][who]

    for name, conv in world["conversations"].items():
        if name in VISIBLE[who]:
            assert access.get_conversation_for_user(user, conv.pk) == conv
        else:
            with pytest.raises(Http404):
                access.get_conversation_for_user(user, conv.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_gets_a_conversation_for_writing_or_refuses(world, who) -> None:
    user = world["users"][who]

    for name, conv in world["conversations"].items():
        if name in WRITABLE[who]:
            assert access.get_conversation_for_user(user, conv.pk, write=True) == conv
        elif name in VISIBLE[who]:
            with pytest.raises(PermissionDenied):
                access.get_conversation_for_user(user, conv.pk, write=True)
        else:
            with pytest.raises(Http404):
                access.get_conversation_for_user(user, conv.pk, write=True)


@pytest.mark.django_db
def test_it_answers_404_for_an_id_that_does_not_exist(world) -> None:
    with pytest.raises(Http404):
        access.get_conversation_for_user(world["users"]["admin"], 999_999)


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_lists_the_messages_of_visible_conversations_only(world, who) -> None:
    user = world["users"][who]

    # when
    messages = access.messages_for(user)

    # then
    assert names(world, messages, "messages") == VISIBLE[who]
    for name, message in world["messages"].items():
        if name in VISIBLE[who]:
            assert access.get_message_for_user(user, message.pk) == message
        else:
            with pytest.raises(Http404):
                access.get_message_for_user(user, message.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_lists_the_customers_of_visible_conversations_only(world, who) -> None:
    user = world["users"][who]
    expected = {world["conversations"][name].customer_id for name in VISIBLE[who]}

    # when
    customers = set(access.customers_for(user).values_list("pk", flat=True))

    # then
    assert customers == expected
    for customer in Customer.objects.all():
        if customer.pk in expected:
            assert access.get_customer_for_user(user, customer.pk) == customer
        else:
            with pytest.raises(Http404):
                access.get_customer_for_user(user, customer.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_lists_the_inboxes_each_user_works_in(world, who) -> None:
    inboxes = access.inboxes_for(world["users"][who])

    assert names(world, inboxes, "inboxes") == INBOXES[who]


@pytest.mark.django_db
def test_it_takes_everything_away_when_an_attendant_leaves_the_inbox(world) -> None:
    # given
    att1 = world["users"]["att1"]

    # when
    Membership.objects.filter(user=att1).delete()

    # then: their assigned conversation too, although they are still its assignee
    assert list(access.conversations_for(att1)) == []
    assert access.can_act(att1, world["conversations"]["mine"]) is False


@pytest.mark.django_db
def test_it_gives_a_supervisor_everything_in_their_inbox_and_nothing_elsewhere(world) -> None:
    supervisor = world["users"]["supervisor"]

    assert access.can_act(supervisor, world["conversations"]["theirs"]) is True
    assert access.can_act(supervisor, world["conversations"]["b_queued"]) is False
    assert access.role_in(supervisor, world["inboxes"]["A"].pk) == Membership.Role.SUPERVISOR
    assert access.role_in(supervisor, world["inboxes"]["B"].pk) is None


@pytest.mark.django_db
def test_it_lets_members_and_superusers_own_conversations_of_an_inbox(world) -> None:
    users, inbox_a = world["users"], world["inboxes"]["A"]

    owners = {who for who in USERS if access.can_own(users[who], inbox_a.pk)}

    assert owners == {"admin", "supervisor", "att1", "att2"}
    assert set(access.assignable_users(inbox_a)) == {users["supervisor"], users["att1"], users["att2"]}


@pytest.mark.django_db
def test_it_lists_visible_conversations_in_one_query(world, django_assert_num_queries) -> None:
    att1 = world["users"]["att1"]

    with django_assert_num_queries(1):
        rows = [
            (c.inbox.name, c.customer.name, c.assignee and c.assignee.username) for c in access.conversations_for(att1)
        ]

    assert len(rows) == 5


@pytest.mark.django_db
def test_it_lists_messages_and_customers_in_one_query_each(world, django_assert_num_queries) -> None:
    att1 = world["users"]["att1"]

    with django_assert_num_queries(1):
        assert len([m.conversation.pk for m in access.messages_for(att1)]) == 5
    with django_assert_num_queries(1):
        assert len(list(access.customers_for(att1))) == 4


@pytest.mark.django_db
def test_it_lets_only_superusers_and_staff_supervisors_use_the_admin(world) -> None:
    users = world["users"]

    allowed = {who for who in USERS if access.may_use_admin(users[who])}

    assert allowed == {"admin", "supervisor"}


@pytest.mark.django_db
def test_it_uses_the_queryset_helpers_for_the_queue(world) -> None:
    att1 = world["users"]["att1"]
    qs = access.conversations_for(att1)

    assert names(world, qs.waiting()) == {"queued"}
    assert names(world, qs.with_bot()) == {"bot"}
    assert names(world, qs.assigned_to(att1)) == {"mine"}
    assert names(world, Conversation.objects.in_inboxes(access.member_inbox_ids(att1)).open()) == {
        "bot",
        "queued",
        "mine",
        "theirs",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("who", USERS)
def test_it_lists_a_customers_other_conversations_as_the_queryset_does(world, who) -> None:
    user = world["users"][who]
    for conversation in world["conversations"].values():
        # given: what the lazy queryset answers for this customer
        expected = list(
            access.conversations_for(user)
            .filter(customer_id=conversation.customer_id)
            .exclude(pk=conversation.pk)
            .order_by("-opened", "-pk")[:10]
        )

        # when / then: the compiled read answers the same, rows and related objects
        found = access.other_conversations_for(user, conversation, 10)
        assert found == expected
        assert [(c.inbox.name, c.customer.name) for c in found] == [(c.inbox.name, c.customer.name) for c in expected]


@pytest.mark.django_db
@pytest.mark.parametrize("pk", ["abc", "", None, -1, 0, 2**63, "1.5"])
def test_it_answers_404_for_anything_that_is_not_a_conversation_id(world, pk) -> None:
    with pytest.raises(Http404):
        access.get_conversation_for_user(world["users"]["admin"], pk)


@pytest.mark.django_db
def test_it_reads_a_users_memberships_once_per_request(world, django_assert_num_queries) -> None:
    # given
    supervisor = world["users"]["supervisor"]
    inbox_a, inbox_b = world["inboxes"]["A"], world["inboxes"]["B"]

    with access.remembering_roles():
        # when: the questions a console page asks
        with django_assert_num_queries(1):
            roles = (access.role_in(supervisor, inbox_a.pk), access.role_in(supervisor, inbox_b.pk))
            acts = access.can_act(supervisor, world["conversations"]["theirs"])
            supervises = access.supervises_any(supervisor)

        # then
        assert roles == (Membership.Role.SUPERVISOR, None)
        assert acts is True
        assert supervises is True

        # and a membership changed during the request is read again
        Membership.objects.filter(user=supervisor).update(role=Membership.Role.ATTENDANT)
        Membership.objects.get(user=supervisor).save()
        assert access.role_in(supervisor, inbox_a.pk) == Membership.Role.ATTENDANT


@pytest.mark.django_db
def test_it_reads_memberships_fresh_outside_a_request(world, django_assert_num_queries) -> None:
    # given: no request scope (a websocket, a worker)
    att1 = world["users"]["att1"]
    inbox_a = world["inboxes"]["A"]
    assert access.role_in(att1, inbox_a.pk) == Membership.Role.ATTENDANT

    # when: the membership goes
    Membership.objects.filter(user=att1).delete()

    # then: the next question knows, at one query each
    with django_assert_num_queries(2):
        assert access.role_in(att1, inbox_a.pk) is None
        assert access.can_act(att1, world["conversations"]["mine"]) is False
