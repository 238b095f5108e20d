"""What a waiting customer is told: a person is coming, their place and an estimate; out of
hours, when people are back; again when the wait runs long; nothing once a person has them."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from bots import hours, notices
from bots.models import BotConfig, BusinessHours
from bots.services import config_for
from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Attendant, Handoff

pytest_plugins = ["tests.conftest_graph"]

Status = Conversation.Status
Reason = Handoff.Reason


@pytest.fixture
def bot(inbox) -> BotConfig:
    return config_for(inbox)


@pytest.fixture
def waiting_customer(make_conversation) -> Any:
    """A customer talking to the bot, who wrote a moment ago (their 24-hour window is open)."""

    def make(**extra: Any) -> Conversation:
        return make_conversation(Status.BOT, last_inbound=timezone.now(), **extra)

    return make


def system_texts(conversation: Conversation) -> list[str]:
    return list(
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.OUT, sender_kind=Message.SenderKind.SYSTEM
        )
        .order_by("id")
        .values_list("text", flat=True)
    )


def handled_recently(make_conversation: Any, *minutes: int) -> None:
    now = timezone.now()
    for wait in minutes:
        Handoff.objects.create(
            conversation=make_conversation(Status.CLOSED),
            reason=Reason.CUSTOMER_REQUEST,
            requested=now - timedelta(hours=2),
            assigned=now - timedelta(hours=2) + timedelta(minutes=wait),
            closed=now - timedelta(hours=1),
        )


@pytest.mark.django_db
def test_it_tells_the_customer_a_person_is_coming_with_position_and_estimate(
    team, bot, make_conversation, waiting_customer, fake_graph, english, django_capture_on_commit_callbacks
) -> None:
    # given: two customers already waiting, handoffs handled in 3, 5 and 7 minutes this week
    handled_recently(make_conversation, 3, 5, 7)
    for _ in range(2):
        services.request_handoff(waiting_customer(), reason=Reason.CUSTOMER_REQUEST)
    conversation = waiting_customer()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    # then: third in line, nobody online: 3 rounds of the 5-minute median
    [text] = system_texts(conversation)
    assert "passing you to a person" in text
    assert "You are number 3 in line." in text
    assert "about 15 minutes" in text
    assert Handoff.objects.get(conversation=conversation).notified is not None
    assert [s.json["text"]["body"] for s in fake_graph.sends()] == [text]


@pytest.mark.django_db
def test_without_data_there_is_no_estimate(team, bot, waiting_customer, fake_graph, english) -> None:
    conversation = waiting_customer()
    services.request_handoff(conversation, reason=Reason.COMPLAINT)

    message = notices.tell_waiting(conversation.pk)

    assert message.text == "I'm passing you to a person from our team, who will answer you here shortly. " + (
        "You are next in line."
    )


@pytest.mark.django_db
def test_out_of_hours_it_says_when_people_are_back(
    team, bot, waiting_customer, fake_graph, english, django_capture_on_commit_callbacks
) -> None:
    # given: open only three days from now, 09:00-10:00
    local_today = timezone.now().astimezone(hours.zone(bot)).date()
    open_day = (local_today + timedelta(days=3)).weekday()
    BusinessHours.objects.create(bot=bot, weekday=open_day, opens=time(9), closes=time(10))
    conversation = waiting_customer()
    back = hours.next_opening(bot, timezone.now())

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    # then
    [text] = system_texts(conversation)
    weekday = str(BusinessHours.Weekday(back.weekday()).label)
    assert f"We are back {weekday}" in text
    assert "at 09:00" in text
    assert f"(our hours: {BusinessHours.Weekday(open_day).label}: 09:00–10:00)" in text
    assert "in line" not in text
    handoff = Handoff.objects.get(conversation=conversation)
    assert handoff.out_of_hours and handoff.notified is not None


@pytest.mark.django_db
def test_out_of_hours_the_business_message_is_used_when_set(team, bot, waiting_customer, fake_graph) -> None:
    bot.out_of_hours_message = "Estamos fechados. Voltamos segunda às 8h."
    bot.save()
    BusinessHours.objects.create(bot=bot, weekday=(timezone.now().weekday() + 3) % 7, opens=time(9), closes=time(10))
    conversation = waiting_customer()
    services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    assert notices.tell_waiting(conversation.pk).text == "Estamos fechados. Voltamos segunda às 8h."


@pytest.mark.django_db
def test_it_is_written_in_portuguese_for_the_customer(team, bot, waiting_customer, fake_graph, settings) -> None:
    # given: the business's language (the catalogue may not have these words yet: then English)
    conversation = waiting_customer()
    services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    message = notices.tell_waiting(conversation.pk)

    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        expected = notices.queue_text(1, None)
    assert message.text == expected


@pytest.mark.django_db
def test_a_long_wait_gets_a_reminder_once_per_period(
    team, bot, waiting_customer, fake_graph, english, settings
) -> None:
    # given: told 20 minutes ago, reminders every 15
    settings.HANDOFF_WAIT_NOTICE_MINUTES = 15
    conversation = waiting_customer()
    handoff = services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)
    Handoff.objects.filter(pk=handoff.pk).update(notified=timezone.now() - timedelta(minutes=20))
    told_recently = waiting_customer()
    services.request_handoff(told_recently, reason=Reason.CUSTOMER_REQUEST)
    Handoff.objects.filter(conversation=told_recently).update(notified=timezone.now() - timedelta(minutes=5))

    # when
    first = notices.send_wait_notices()
    second = notices.send_wait_notices()

    # then
    assert (first, second) == (1, 0)
    [text] = system_texts(conversation)
    assert text.startswith("Thank you for waiting!")
    assert "You are next in line." in text
    assert system_texts(told_recently) == []


@pytest.mark.django_db
def test_nothing_is_sent_once_a_person_has_the_conversation(team, bot, waiting_customer, fake_graph, settings) -> None:
    # given
    settings.HANDOFF_WAIT_NOTICE_MINUTES = 15
    conversation = waiting_customer()
    services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)
    Handoff.objects.filter(conversation=conversation).update(notified=timezone.now() - timedelta(minutes=20))
    services.take_over(conversation, team.ana)

    # when
    assert notices.tell_waiting(conversation.pk) is None
    assert notices.send_wait_notices() == 0

    # then
    assert system_texts(conversation) == []
    assert fake_graph.sends() == []


@pytest.mark.django_db
def test_an_immediate_assignment_leaves_the_customer_the_one_notice(
    team, bot, waiting_customer, fake_graph, django_capture_on_commit_callbacks
) -> None:
    # given: Ana is online with room
    Attendant.objects.create(user=team.ana, presence=Attendant.Presence.ONLINE)
    conversation = waiting_customer()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    # then: assigned, and told once at most (never after assignment)
    conversation.refresh_from_db()
    assert conversation.status == Status.ASSIGNED
    assert len(system_texts(conversation)) <= 1
    assert notices.tell_waiting(conversation.pk) is None


@pytest.mark.django_db
def test_a_pause_for_the_phone_app_tells_the_customer_nothing(
    team, bot, waiting_customer, fake_graph, django_capture_on_commit_callbacks
) -> None:
    conversation = waiting_customer()

    with django_capture_on_commit_callbacks(execute=True):
        services.request_handoff(conversation, reason=Reason.PHONE_APP)

    assert system_texts(conversation) == []


@pytest.mark.django_db
def test_returned_to_the_queue_the_customer_is_told_again(
    team, bot, waiting_customer, fake_graph, english, django_capture_on_commit_callbacks
) -> None:
    conversation = waiting_customer()
    services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)
    services.take_over(conversation, team.ana)

    with django_capture_on_commit_callbacks(execute=True):
        services.transfer_to_queue(conversation, team.ana)

    [text] = system_texts(conversation)
    assert "You are next in line." in text


@pytest.mark.django_db
def test_a_closed_window_is_logged_not_raised(team, bot, make_conversation, fake_graph, caplog) -> None:
    # given: the customer last wrote two days ago
    conversation = make_conversation(Status.BOT, last_inbound=timezone.now() - timedelta(days=2))
    services.request_handoff(conversation, reason=Reason.CUSTOMER_REQUEST)

    # when
    with caplog.at_level("INFO", logger="bots.notices"):
        assert notices.tell_waiting(conversation.pk) is None

    # then
    assert "window_closed" in caplog.text
    assert Handoff.objects.get().notified is None
    assert fake_graph.sends() == []
