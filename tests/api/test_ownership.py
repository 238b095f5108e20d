"""The API's ownership changes (take over, transfer, close, reopen): each goes through
handoffs.services with the console's rules; every refusal maps its code to 403/409/400 with
the translated message, and changes nothing."""

from __future__ import annotations

import pytest

from conversations.models import Conversation
from handoffs.models import OwnershipChange
from tests.console.actions_support import state

pytest_plugins = ["tests.console.actions_support"]

Status = Conversation.Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def url(conversation: Conversation, action: str) -> str:
    return f"/api/conversations/{conversation.pk}/{action}/"


def test_it_takes_over_a_queued_conversation(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    response = api(team.ana).post(url(conversation, "take-over"))

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "assigned"
    assert response.json()["assignee"]["id"] == team.ana.pk
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (Status.ASSIGNED, team.ana.pk)
    assert OwnershipChange.objects.get(conversation=conversation).action == OwnershipChange.Action.TAKE_OVER


def test_it_answers_409_when_a_supervisor_takes_over_one_already_assigned(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(team.supervisor).post(url(conversation, "take-over"))

    # then
    assert response.status_code == 409
    assert response.json()["detail"]
    assert state(conversation) == before


def test_it_answers_403_to_an_attendant_acting_on_a_closed_conversation_they_may_only_read(
    team, make_conversation, api
) -> None:
    # given: the customer is in the queue now, so Bruno may read their closed history
    queued = make_conversation(Status.QUEUED)
    closed = make_conversation(Status.CLOSED, assignee=team.ana, customer=queued.customer)
    before = state(closed)

    # when
    response = api(team.bruno).post(url(closed, "reopen"), {}, format="json")

    # then
    assert response.status_code == 403
    assert response.json() == {"detail": "You can read this conversation but not act on it."}
    assert state(closed) == before


@pytest.mark.parametrize("action", ["take-over", "transfer", "close", "reopen"])
@pytest.mark.parametrize("who", ["outsider", "bruno"])
def test_it_answers_404_for_actions_on_a_conversation_the_user_may_not_see(
    team, make_conversation, api, action, who
) -> None:
    # given: Ana's conversation
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(getattr(team, who)).post(url(conversation, action), {"to": "queue"}, format="json")

    # then
    assert response.status_code == 404
    assert "Maria" not in response.content.decode()
    assert state(conversation) == before


@pytest.mark.parametrize("action", ["take-over", "transfer", "close", "reopen"])
def test_it_refuses_anonymous_actions(make_conversation, client, action) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    # when
    response = client.post(url(conversation, action), {"to": "queue"})

    # then
    assert response.status_code == 403
    assert state(conversation) == before


@pytest.mark.parametrize("action", ["take-over", "transfer", "close", "reopen"])
def test_it_refuses_the_wrong_method(team, make_conversation, api, action) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    # when
    responses = [
        api(team.supervisor).get(url(conversation, action)),
        api(team.supervisor).put(url(conversation, action)),
    ]

    # then
    assert [r.status_code for r in responses] == [405, 405]
    assert state(conversation) == before


def test_it_transfers_to_another_attendant(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)

    # when
    response = api(team.ana).post(
        url(conversation, "transfer"),
        {"to": "attendant", "assignee": team.bruno.pk, "reason": "plantão"},
        format="json",
    )

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (Status.ASSIGNED, team.bruno.pk)
    change = OwnershipChange.objects.get(conversation=conversation)
    assert (change.action, change.reason) == (OwnershipChange.Action.TRANSFER, "plantão")


def test_it_lets_a_supervisor_assign_a_queued_conversation(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    response = api(team.supervisor).post(
        url(conversation, "transfer"), {"to": "attendant", "assignee": team.ana.pk}, format="json"
    )

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (Status.ASSIGNED, team.ana.pk)


@pytest.mark.parametrize(("to", "status"), [("queue", Status.QUEUED), ("bot", Status.BOT)])
def test_it_transfers_to_the_queue_or_the_bot(team, make_conversation, api, to, status) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)

    # when
    response = api(team.ana).post(url(conversation, "transfer"), {"to": to}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["status"] == status
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (status, None)


def test_it_answers_400_for_an_assignee_outside_the_inbox(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(team.ana).post(
        url(conversation, "transfer"), {"to": "attendant", "assignee": team.outsider.pk}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {"detail": "Choose an attendant of this inbox, the queue or the bot."}
    assert state(conversation) == before


def test_it_answers_400_for_a_transfer_without_a_destination(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    responses = [
        api(team.ana).post(url(conversation, "transfer"), {"to": "attendant"}, format="json"),
        api(team.ana).post(url(conversation, "transfer"), {"to": "mars"}, format="json"),
    ]

    # then
    assert [r.status_code for r in responses] == [400, 400]
    assert state(conversation) == before


def test_it_answers_403_when_an_attendant_sends_the_queue_to_the_bot(team, make_conversation, api) -> None:
    # given: moving a queued conversation to the bot is for supervisors
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    # when
    response = api(team.ana).post(url(conversation, "transfer"), {"to": "bot"}, format="json")

    # then
    assert response.status_code == 403
    assert response.json()["detail"]
    assert state(conversation) == before


def test_it_closes_with_a_resolution(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)

    # when
    response = api(team.ana).post(url(conversation, "close"), {"resolution": "Pedido entregue."}, format="json")

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.resolution) == (Status.CLOSED, "Pedido entregue.")
    assert OwnershipChange.objects.get(conversation=conversation).reason == "Pedido entregue."


def test_it_answers_409_when_closing_a_closed_conversation(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.CLOSED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(team.supervisor).post(url(conversation, "close"), {"resolution": "again"}, format="json")

    # then
    assert response.status_code == 409
    assert state(conversation) == before


def test_it_answers_400_for_a_resolution_too_long(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(team.ana).post(url(conversation, "close"), {"resolution": "x" * 2001}, format="json")

    # then
    assert response.status_code == 400
    assert state(conversation) == before


def test_it_reopens_a_closed_conversation_for_its_last_attendant(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.CLOSED, assignee=team.ana)

    # when
    response = api(team.ana).post(url(conversation, "reopen"), {}, format="json")

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id, conversation.closed) == (Status.ASSIGNED, team.ana.pk, None)


def test_it_reopens_to_the_queue_when_asked(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.CLOSED, assignee=team.ana)

    # when
    response = api(team.supervisor).post(url(conversation, "reopen"), {"to": "queued"}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "queued"


def test_it_answers_409_when_reopening_while_the_customer_has_another_open_conversation(
    team, make_conversation, api
) -> None:
    # given
    open_one = make_conversation(Status.QUEUED)
    closed = make_conversation(Status.CLOSED, assignee=team.ana, customer=open_one.customer)
    before = state(closed)

    # when
    response = api(team.supervisor).post(url(closed, "reopen"), {}, format="json")

    # then
    assert response.status_code == 409
    assert state(closed) == before
