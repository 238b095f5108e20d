"""The API's customers (phones masked for attendants), canned responses, labels and
templates: only those of the user's inboxes."""

from __future__ import annotations

import pytest

from conversations.models import CannedResponse, Conversation, Customer, Label, MessageTemplate

pytest_plugins = ["tests.console.actions_support"]

Status = Conversation.Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def names(response, key: str = "name") -> list[str]:
    return [row[key] for row in response.json()["results"]]


def test_it_lists_the_customers_an_attendant_may_see_with_masked_phones(
    team, make_conversation, api, django_assert_max_num_queries
) -> None:
    # given
    maria = Customer.objects.create(wa_id="5511988000001", phone="+5511988000001", name="Maria Silva")
    make_conversation(Status.QUEUED, customer=maria)
    for n in range(5):
        make_conversation(Status.QUEUED, customer=Customer.objects.create(wa_id=f"55119000{n}", name=f"Zé {n}"))
    make_conversation(Status.ASSIGNED, assignee=team.bruno, customer=Customer.objects.create(name="Privado"))
    make_conversation(Status.QUEUED, inbox=team.other_inbox, customer=Customer.objects.create(name="Outra loja"))
    client = api(team.ana)

    # when
    with django_assert_max_num_queries(6):
        response = client.get("/api/customers/")

    # then
    assert response.status_code == 200
    assert names(response) == ["Maria Silva", "Zé 0", "Zé 1", "Zé 2", "Zé 3", "Zé 4"]
    assert response.json()["results"][0] == {
        "id": maria.pk,
        "name": "Maria Silva",
        "username": "",
        "phone": "+55 11 9****-0001",
        "created": response.json()["results"][0]["created"],
    }


def test_it_shows_the_whole_phone_to_a_supervisor_and_an_admin(team, make_conversation, api) -> None:
    # given
    maria = Customer.objects.create(wa_id="5511988000001", phone="+5511988000001", name="Maria Silva", notes="VIP")
    make_conversation(Status.ASSIGNED, assignee=team.ana, customer=maria)

    # when
    as_supervisor = api(team.supervisor).get(f"/api/customers/{maria.pk}/")
    as_admin = api(team.admin).get("/api/customers/")
    as_attendant = api(team.ana).get(f"/api/customers/{maria.pk}/")

    # then
    assert as_supervisor.json()["phone"] == "+55 11 98800-0001"
    assert as_supervisor.json()["notes"] == "VIP"
    assert names(as_admin, "phone") == ["+55 11 98800-0001"]
    assert as_attendant.json()["phone"] == "+55 11 9****-0001"


@pytest.mark.parametrize("who", ["outsider", "bruno"])
def test_it_answers_404_for_a_customer_the_user_may_not_see(team, make_conversation, api, who) -> None:
    # given: Ana's customer
    maria = Customer.objects.create(wa_id="5511988000001", phone="+5511988000001", name="Maria Silva")
    make_conversation(Status.ASSIGNED, assignee=team.ana, customer=maria)

    # when
    response = api(getattr(team, who)).get(f"/api/customers/{maria.pk}/")

    # then
    assert response.status_code == 404
    assert "Maria" not in response.content.decode()


def test_it_searches_customers_by_name(team, make_conversation, api) -> None:
    # given
    make_conversation(Status.QUEUED, customer=Customer.objects.create(wa_id="1", name="Joana Prado"))
    make_conversation(Status.QUEUED, customer=Customer.objects.create(wa_id="2", name="Carlos Lima"))

    # when
    response = api(team.ana).get("/api/customers/", {"search": "joana"})

    # then
    assert names(response) == ["Joana Prado"]


def test_it_lists_the_canned_responses_of_the_users_inboxes_and_the_global_ones(
    team, api, django_assert_max_num_queries
) -> None:
    # given
    CannedResponse.objects.create(inbox=team.inbox, shortcut="ola", title="Olá", text="Olá! Como posso ajudar?")
    CannedResponse.objects.create(inbox=None, shortcut="tchau", title="Tchau", text="Até logo!")
    hidden = CannedResponse.objects.create(inbox=team.other_inbox, shortcut="filial", title="Filial", text="Outra loja")
    client = api(team.ana)

    # when
    with django_assert_max_num_queries(5):
        response = client.get("/api/canned-responses/")
    other = client.get(f"/api/canned-responses/{hidden.pk}/")

    # then
    assert names(response, "shortcut") == ["ola", "tchau"]
    assert response.json()["results"][0]["text"] == "Olá! Como posso ajudar?"
    assert other.status_code == 404
    assert "Outra loja" not in other.content.decode()


def test_it_lists_the_labels_of_the_users_inboxes_and_the_global_ones(team, api, django_assert_max_num_queries) -> None:
    # given
    Label.objects.create(inbox=team.inbox, name="Urgente")
    Label.objects.create(inbox=None, name="Geral")
    hidden = Label.objects.create(inbox=team.other_inbox, name="Filial")
    client = api(team.ana)

    # when
    with django_assert_max_num_queries(5):
        response = client.get("/api/labels/")
    other = client.get(f"/api/labels/{hidden.pk}/")

    # then
    assert names(response) == ["Geral", "Urgente"]
    assert other.status_code == 404


def test_it_lists_the_approved_templates_of_the_users_inboxes(team, api, django_assert_max_num_queries) -> None:
    # given
    body = [{"type": "BODY", "text": "Olá {{1}}"}]
    MessageTemplate.objects.create(
        inbox=team.inbox, name="boas_vindas", language="pt_BR", status="APPROVED", components=body
    )
    MessageTemplate.objects.create(inbox=team.inbox, name="rascunho", language="pt_BR", status="PENDING")
    hidden = MessageTemplate.objects.create(inbox=team.other_inbox, name="filial", language="pt_BR", status="APPROVED")
    client = api(team.ana)

    # when
    with django_assert_max_num_queries(5):
        response = client.get("/api/templates/", {"inbox": team.inbox.pk})
    other = client.get(f"/api/templates/{hidden.pk}/")

    # then
    assert other.status_code == 404
    assert names(response) == ["boas_vindas"]
    assert response.json()["results"][0]["components"] == body
    assert response.json()["results"][0]["language"] == "pt_BR"


@pytest.mark.parametrize("path", ["/api/customers/", "/api/canned-responses/", "/api/labels/", "/api/templates/"])
def test_it_refuses_anonymous_requests_and_writes_to_the_catalogue(team, api, client, path) -> None:
    # when
    anonymous = client.get(path)
    write = api(team.supervisor).post(path, {"name": "x"}, format="json")

    # then
    assert anonymous.status_code == 403
    assert write.status_code == 405
