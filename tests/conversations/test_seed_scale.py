"""seed_demo --scale N: a large realistic dataset for the benchmarks, added on each run."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from conversations import access
from conversations.models import Conversation, Customer, Inbox, Label, Membership, Message


@pytest.mark.django_db
def test_it_adds_n_conversations_with_about_ten_messages_each() -> None:
    # when
    out = StringIO()
    call_command("seed_demo", "--scale", "60", stdout=out)

    # then
    assert Conversation.objects.count() == 60
    assert Customer.objects.count() == 30
    messages = Message.objects.count()
    assert 6 * 60 <= messages <= 14 * 60
    assert 8 <= messages / 60 <= 12
    assert "Added 30 customers, 60 conversations and" in out.getvalue()


@pytest.mark.django_db
def test_it_spreads_them_over_inboxes_staff_statuses_and_labels() -> None:
    # when
    call_command("seed_demo", "--scale", "400", stdout=StringIO())

    # then
    assert Inbox.objects.count() == 4
    assert Membership.objects.filter(role=Membership.Role.SUPERVISOR).count() == 4
    assert Membership.objects.filter(role=Membership.Role.ATTENDANT).count() >= 20
    by_status = dict(Conversation.objects.values_list("status").annotate(n=Count("id")))
    assert set(by_status) == set(Conversation.Status.values)
    assert by_status["closed"] > sum(by_status.values()) / 2
    assert set(Conversation.objects.values_list("inbox_id", flat=True).distinct()) == set(
        Inbox.objects.values_list("id", flat=True)
    )
    assert Label.objects.filter(conversations__isnull=False).distinct().count() >= 6
    # assignees are members of the conversation's inbox (access follows membership)
    for conversation in Conversation.objects.filter(status="assigned").select_related("assignee")[:50]:
        assert access.role_in(conversation.assignee, conversation.inbox_id) is not None
    # Portuguese text, varied, with accents; weeks of history
    texts = set(Message.objects.values_list("text", flat=True))
    assert len(texts) > 300
    assert any("ç" in text or "ã" in text for text in texts)
    first = Message.objects.order_by("wa_timestamp").values_list("wa_timestamp", flat=True).first()
    last = Message.objects.order_by("-wa_timestamp").values_list("wa_timestamp", flat=True).first()
    assert (last - first).days >= 14


@pytest.mark.django_db
def test_it_keeps_each_conversation_consistent() -> None:
    # when
    call_command("seed_demo", "--scale", "200", stdout=StringIO())
    now = timezone.now()

    # then: last_message is the last message, a queued one waits on the customer, closed ones
    # have a closing time, open ones do not; nothing happens in the future
    for conversation in Conversation.objects.all():
        mine = list(conversation.messages.order_by("wa_timestamp"))
        assert conversation.opened == mine[0].wa_timestamp
        assert conversation.last_message <= now
        assert conversation.closed is None or conversation.closed <= now
        assert conversation.last_message == mine[-1].wa_timestamp
        assert conversation.last_inbound == max(m.wa_timestamp for m in mine if m.direction == "in")
        assert (conversation.closed is not None) == (conversation.status == "closed")
        if conversation.status == "queued":
            assert mine[-1].direction == "in"
        if conversation.status == "assigned":
            assert conversation.assignee_id is not None


@pytest.mark.django_db
def test_it_is_additive_and_reuses_its_inboxes_and_staff() -> None:
    # given
    call_command("seed_demo", "--scale", "20", stdout=StringIO())
    users = User.objects.count()

    # when
    call_command("seed_demo", "--scale", "20", stdout=StringIO())

    # then
    assert Conversation.objects.count() == 40
    assert Customer.objects.count() == 20
    assert Inbox.objects.count() == 4
    assert User.objects.count() == users
    assert not User.objects.filter(username__startswith="scale_").exclude(password__startswith="!").exists()
