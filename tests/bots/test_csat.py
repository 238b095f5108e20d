"""The rating question after a close (CSAT): a list of five rows inside the 24-hour window,
the answer stored on the handoff in the closed conversation, which stays closed, and the bot
stays quiet."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bots.models import BotRun
from bots.services import config_for
from conversations.models import Conversation, Message
from handoffs import services
from handoffs.models import Handoff
from tests.conftest import envelope, text_payload

pytest_plugins = ["tests.conftest_graph"]

Status = Conversation.Status
WA_ID = "5511987654321"
_ids = itertools.count(1)


@pytest.fixture
def deliver(post_webhook, django_capture_on_commit_callbacks, fake_graph) -> Any:
    def post(body: dict) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            assert post_webhook(body).status_code == 200

    return post


def list_reply(row_id: str, title: str, context_wamid: str) -> dict:
    n = next(_ids)
    message = {
        "from": WA_ID,
        "id": f"wamid.CSAT{n}",
        "timestamp": str(int(time.time()) + n),
        "type": "interactive",
        "context": {"from": "5511900000000", "id": context_wamid},
        "interactive": {"type": "list_reply", "list_reply": {"id": row_id, "title": title}},
    }
    return envelope({"contacts": [{"profile": {"name": "Maria Silva"}, "wa_id": WA_ID}], "messages": [message]})


@pytest.fixture
def handled(team, deliver, django_capture_on_commit_callbacks) -> Any:
    """The customer wrote, asked for a person, Ana took it over; ``close()`` closes it."""
    config_for(team.inbox)
    deliver(text_payload("wamid.HELLO", "oi", timestamp=int(time.time())))
    conversation = Conversation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.request_handoff(conversation, reason=Handoff.Reason.CUSTOMER_REQUEST)
        services.take_over(conversation, team.ana)

    def close() -> Conversation:
        with django_capture_on_commit_callbacks(execute=True):
            services.close(conversation, team.ana)
        conversation.refresh_from_db()
        return conversation

    return close


def rating_question(conversation: Conversation) -> Message | None:
    return Message.objects.filter(
        conversation=conversation, type="interactive", direction="out", sender_kind=Message.SenderKind.SYSTEM
    ).first()


@pytest.mark.django_db
def test_a_closed_handoff_gets_the_rating_list(team, handled, fake_graph, english) -> None:
    # when
    conversation = handled()

    # then
    handoff = Handoff.objects.get()
    assert handoff.csat_asked is not None
    question = rating_question(conversation)
    assert question.sender_kind == Message.SenderKind.SYSTEM
    sent = [s.json for s in fake_graph.sends() if s.json.get("biz_opaque_callback_data") == question.callback_data]
    assert len(sent) == 1
    interactive = sent[0]["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"]["text"] == "How would you rate our service?"
    rows = interactive["action"]["sections"][0]["rows"]
    assert sorted(row["id"] for row in rows) == [f"csat:{handoff.pk}:{score}" for score in range(1, 6)]


@pytest.mark.django_db
def test_the_answer_is_stored_and_the_conversation_stays_closed_without_the_bot(
    team, handled, deliver, fake_graph, english
) -> None:
    # given
    conversation = handled()
    handoff = Handoff.objects.get()
    question = rating_question(conversation)
    assert question.wamid
    bot_runs = BotRun.objects.count()
    assert bot_runs >= 1  # the bot answered the customer before the handoff: it is awake
    messages_before = Message.objects.filter(direction="out").count()

    # when
    deliver(list_reply(f"csat:{handoff.pk}:4", "4 – Good", question.wamid))

    # then
    handoff.refresh_from_db()
    assert handoff.csat_score == 4 and handoff.csat_answered is not None
    assert Conversation.objects.count() == 1
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    answer = Message.objects.get(wamid__startswith="wamid.CSAT")
    assert answer.conversation_id == conversation.pk
    # One thank-you (system), nothing from the bot.
    new_out = Message.objects.filter(direction="out").order_by("id")[messages_before:]
    assert [(m.sender_kind, m.text) for m in new_out] == [(Message.SenderKind.SYSTEM, "Thank you for your rating!")]
    assert new_out[0].conversation_id == conversation.pk
    assert BotRun.objects.count() == bot_runs


@pytest.mark.django_db
def test_a_second_answer_replaces_the_score_and_is_not_thanked_again(team, handled, deliver, fake_graph) -> None:
    conversation = handled()
    handoff = Handoff.objects.get()
    question = rating_question(conversation)
    deliver(list_reply(f"csat:{handoff.pk}:2", "2", question.wamid))
    thanked = Message.objects.filter(direction="out", sender_kind="system", type="text").count()

    deliver(list_reply(f"csat:{handoff.pk}:5", "5", question.wamid))

    handoff.refresh_from_db()
    assert handoff.csat_score == 5
    assert Message.objects.filter(direction="out", sender_kind="system", type="text").count() == thanked
    assert Conversation.objects.get().status == Status.CLOSED


@pytest.mark.django_db
def test_an_answer_naming_another_handoff_changes_nothing(team, handled, deliver, make_conversation) -> None:
    conversation = handled()
    other = Handoff.objects.create(
        conversation=make_conversation(Status.CLOSED), reason="other", csat_asked=timezone.now()
    )

    deliver(list_reply(f"csat:{other.pk}:1", "1", rating_question(conversation).wamid))

    other.refresh_from_db()
    assert other.csat_score is None
    assert Handoff.objects.get(conversation=conversation).csat_score is None


@pytest.mark.django_db
def test_no_rating_when_disabled(team, handled, fake_graph) -> None:
    config = config_for(team.inbox)
    config.csat = False
    config.save()

    conversation = handled()

    assert rating_question(conversation) is None
    assert Handoff.objects.get().csat_asked is None


@pytest.mark.django_db
def test_no_rating_outside_the_window(team, handled, fake_graph) -> None:
    Conversation.objects.update(last_inbound=timezone.now() - timedelta(hours=25))

    conversation = handled()

    assert rating_question(conversation) is None
    assert Handoff.objects.get().csat_asked is None


@pytest.mark.django_db
def test_no_rating_without_a_handoff(team, deliver, fake_graph, django_capture_on_commit_callbacks) -> None:
    # given: a supervisor took it straight from the bot: no handoff
    config_for(team.inbox)
    deliver(text_payload("wamid.HELLO", "oi", timestamp=int(time.time())))
    conversation = Conversation.objects.get()
    services.take_over(conversation, team.ana)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.close(conversation, team.ana)

    # then
    assert rating_question(conversation) is None
