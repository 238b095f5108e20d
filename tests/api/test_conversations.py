"""The API's conversations: the list with its filters, the detail, and who sees what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Conversation, Customer, Label

pytest_plugins = ["tests.console.actions_support"]

Status = Conversation.Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

LIST = "/api/conversations/"


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def test_it_lists_what_an_attendant_may_see_newest_activity_first(team, make_conversation, api) -> None:
    # given
    now = timezone.now()
    queued = make_conversation(Status.QUEUED, last_message=now - timedelta(minutes=5))
    with_bot = make_conversation(Status.BOT, last_message=now - timedelta(minutes=1))
    mine = make_conversation(Status.ASSIGNED, assignee=team.ana, last_message=now - timedelta(minutes=3))
    make_conversation(Status.ASSIGNED, assignee=team.bruno, last_message=now)  # Bruno's: private
    make_conversation(Status.QUEUED, inbox=team.other_inbox, last_message=now)  # another inbox

    # when
    response = api(team.ana).get(LIST)

    # then
    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert ids(response) == [with_bot.pk, mine.pk, queued.pk]


def test_it_shows_a_row_with_the_masked_phone_to_an_attendant_and_the_whole_one_to_a_supervisor(
    team, make_conversation, api
) -> None:
    # given
    customer = Customer.objects.create(wa_id="5511988000001", phone="+5511988000001", name="Maria Silva")
    label = Label.objects.create(name="VIP", color="#ff0000", inbox=team.inbox)
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana, customer=customer)
    conversation.labels.add(label)

    # when
    as_attendant = api(team.ana).get(LIST).json()["results"][0]
    as_supervisor = api(team.supervisor).get(LIST).json()["results"][0]

    # then
    assert as_attendant["customer"] == {
        "id": customer.pk,
        "name": "Maria Silva",
        "username": "",
        "phone": "+55 11 9****-0001",
    }
    assert as_supervisor["customer"]["phone"] == "+55 11 98800-0001"
    assert as_attendant["inbox"] == {"id": team.inbox.pk, "name": "Test"}
    assert as_attendant["status"] == "assigned"
    assert as_attendant["assignee"] == {"id": team.ana.pk, "username": "ana", "name": "Ana"}
    assert as_attendant["labels"] == [{"id": label.pk, "name": "VIP", "color": "#ff0000", "inbox": team.inbox.pk}]
    assert as_attendant["window_open"] is True


def test_it_filters_by_status_inbox_assignee_and_label(team, make_conversation, api) -> None:
    # given
    label = Label.objects.create(name="Urgente", inbox=team.inbox)
    queued = make_conversation(Status.QUEUED)
    anas = make_conversation(Status.ASSIGNED, assignee=team.ana)
    brunos = make_conversation(Status.ASSIGNED, assignee=team.bruno)
    brunos.labels.add(label)
    client = api(team.supervisor)

    # when / then
    assert ids(client.get(LIST, {"status": "queued"})) == [queued.pk]
    assert ids(client.get(LIST, {"assignee": team.ana.pk})) == [anas.pk]
    assert ids(client.get(LIST, {"label": label.pk})) == [brunos.pk]
    assert sorted(ids(client.get(LIST, {"inbox": team.inbox.pk}))) == sorted([queued.pk, anas.pk, brunos.pk])
    assert ids(client.get(LIST, {"inbox": team.other_inbox.pk})) == []


def test_it_filters_by_date_of_last_activity(team, make_conversation, api) -> None:
    # given
    now = timezone.now()
    old = make_conversation(Status.QUEUED, last_message=now - timedelta(days=10))
    recent = make_conversation(Status.QUEUED, last_message=now)
    day = timezone.localdate(now - timedelta(days=10))

    # when / then
    client = api(team.ana)
    assert ids(client.get(LIST, {"until": day.isoformat()})) == [old.pk]
    assert ids(client.get(LIST, {"since": (day + timedelta(days=1)).isoformat()})) == [recent.pk]


def test_it_searches_by_customer_name(team, make_conversation, api) -> None:
    # given
    found = make_conversation(Status.QUEUED, customer=Customer.objects.create(wa_id="551190001", name="Joana Prado"))
    make_conversation(Status.QUEUED, customer=Customer.objects.create(wa_id="551190002", name="Carlos Lima"))

    # when
    response = api(team.ana).get(LIST, {"search": "Joana"})

    # then
    assert ids(response) == [found.pk]


def test_it_refuses_a_bad_filter_with_400(team, api) -> None:
    # when
    response = api(team.ana).get(LIST, {"status": "lost", "since": "yesterday"})

    # then
    assert response.status_code == 400
    assert set(response.json()) == {"status", "since"}


def test_it_lists_with_a_bounded_number_of_queries(team, make_conversation, api, django_assert_max_num_queries) -> None:
    # given
    for n in range(12):
        conversation = make_conversation(
            Status.ASSIGNED if n % 2 else Status.QUEUED, assignee=team.ana if n % 2 else None
        )
        conversation.labels.add(Label.objects.create(name=f"L{n}", inbox=team.inbox))
    client = api(team.ana)

    # when
    with django_assert_max_num_queries(8):
        response = client.get(LIST)

    # then
    assert response.status_code == 200
    assert len(response.json()["results"]) == 12


def test_it_shows_a_conversation_with_the_actions_the_user_may_take(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    response = api(team.ana).get(f"{LIST}{conversation.pk}/")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation.pk
    assert "take_over" in body["actions"]
    assert "close" not in body["actions"]


@pytest.mark.parametrize("who", ["outsider", "bruno"])
def test_it_answers_404_for_a_conversation_the_user_may_not_see(team, make_conversation, api, who) -> None:
    # given: Ana's conversation; Olga works in another inbox, Bruno is Ana's colleague
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)

    # when
    response = api(getattr(team, who)).get(f"{LIST}{conversation.pk}/")

    # then
    assert response.status_code == 404
    assert "Maria" not in response.content.decode()


def test_it_refuses_anonymous_requests(make_conversation, client) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    responses = [client.get(LIST), client.get(f"{LIST}{conversation.pk}/")]

    # then
    assert [r.status_code for r in responses] == [403, 403]
    assert all("Maria" not in r.content.decode() for r in responses)


def test_it_answers_a_session_with_a_verified_second_factor(team, make_conversation, login) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)

    # when
    response = login(team.supervisor).get(LIST)

    # then
    assert response.status_code == 200
    assert ids(response) == [conversation.pk]
