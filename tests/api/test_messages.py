"""The API's messages: the cursor-paginated list (newest page first, newest last), and sends
(text, media, templates) through conversations.outbound with the console's rule of who may
write; refusals change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from conversations.models import Conversation, Message, MessageTemplate
from tests.console.actions_support import state
from tests.fake_graph import FakeGraph

pytest_plugins = ["tests.console.actions_support", "tests.conftest_graph"]

Status = Conversation.Status
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

pytestmark = [pytest.mark.usefixtures("english")]


def url(conversation: Conversation, suffix: str = "") -> str:
    return f"/api/conversations/{conversation.pk}/messages/{suffix}"


def received(conversation: Conversation, n: int, at: Any) -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="text",
        text=f"mensagem {n}",
        wamid=f"wamid.IN{n}",
        wa_timestamp=at,
    )


def sent(conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, direction=Message.Direction.OUT).order_by("id"))


def approved_template(conversation: Conversation) -> MessageTemplate:
    return MessageTemplate.objects.create(
        inbox=conversation.inbox,
        name="pedido_atualizado",
        language="pt_BR",
        category="UTILITY",
        status=MessageTemplate.Status.APPROVED,
        components=[{"type": "BODY", "text": "Olá {{1}}, seu pedido saiu para entrega."}],
    )


# --- The list ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_pages_back_from_the_newest_messages_each_page_newest_last(
    team, make_conversation, api, django_assert_max_num_queries
) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    start = timezone.now() - timedelta(hours=2)
    messages = [received(conversation, n, start + timedelta(minutes=n)) for n in range(5)]
    client = api(team.ana)

    # when
    with django_assert_max_num_queries(6):
        first = client.get(url(conversation), {"page_size": 2}).json()
    second = client.get(first["older"]).json()
    third = client.get(second["older"]).json()

    # then
    assert [m["id"] for m in first["results"]] == [messages[3].pk, messages[4].pk]
    assert [m["id"] for m in second["results"]] == [messages[1].pk, messages[2].pk]
    assert [m["id"] for m in third["results"]] == [messages[0].pk]
    assert first["newer"] is None
    assert third["older"] is None
    assert first["results"][1]["text"] == "mensagem 4"
    assert first["results"][1]["direction"] == "in"


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["outsider", "bruno"])
def test_it_answers_404_for_the_messages_of_a_conversation_the_user_may_not_see(
    team, make_conversation, api, who
) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    received(conversation, 1, timezone.now())

    # when
    response = api(getattr(team, who)).get(url(conversation))

    # then
    assert response.status_code == 404
    assert "mensagem" not in response.content.decode()


@pytest.mark.django_db
def test_it_refuses_anonymous_requests_for_messages(make_conversation, client) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)
    received(conversation, 1, timezone.now())
    before = state(conversation)

    # when
    responses = [client.get(url(conversation)), client.post(url(conversation), {"text": "Oi"})]

    # then
    assert [r.status_code for r in responses] == [403, 403]
    assert "mensagem" not in responses[0].content.decode()
    assert state(conversation) == before


# --- Text ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_sends_text_as_the_holder(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    quoted = received(conversation, 1, timezone.now())

    # when
    response = api(team.ana).post(url(conversation), {"text": "Bom dia!", "reply_to": quoted.pk}, format="json")

    # then
    assert response.status_code == 201
    [message] = sent(conversation)
    assert response.json()["id"] == message.pk
    assert response.json()["sender"]["id"] == team.ana.pk
    assert (message.text, message.sender_id, message.reply_to_id) == ("Bom dia!", team.ana.pk, quoted.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "holder", "who", "code"),
    [
        (Status.QUEUED, None, "ana", 403),  # take it over first
        (Status.CLOSED, "ana", "supervisor", 409),
        (Status.ASSIGNED, "ana", "bruno", 404),  # Bruno cannot see Ana's conversation
        (Status.ASSIGNED, "ana", "outsider", 404),
    ],
)
def test_it_refuses_a_send_from_someone_who_may_not_write_now(
    team, make_conversation, api, status, holder, who, code
) -> None:
    # given
    conversation = make_conversation(status, assignee=getattr(team, holder) if holder else None)
    before = state(conversation)

    # when
    response = api(getattr(team, who)).post(url(conversation), {"text": "Oi"}, format="json")

    # then
    assert response.status_code == code
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_lets_an_attendant_read_a_customers_closed_history_but_not_write_there(team, make_conversation, api) -> None:
    # given: Maria waits in the queue; her earlier conversation was Ana's
    queued = make_conversation(Status.QUEUED)
    closed = make_conversation(Status.CLOSED, assignee=team.ana, customer=queued.customer)
    received(closed, 1, timezone.now() - timedelta(days=3))
    before = state(closed)
    client = api(team.bruno)

    # when
    reading = client.get(url(closed))
    writing = client.post(url(closed), {"text": "Oi"}, format="json")

    # then
    assert reading.status_code == 200
    assert [m["text"] for m in reading.json()["results"]] == ["mensagem 1"]
    assert writing.status_code == 403
    assert writing.json() == {"detail": "You can read this conversation but not act on it."}
    assert state(closed) == before


@pytest.mark.django_db
def test_it_answers_409_with_the_reason_after_the_window(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(
        Status.ASSIGNED, assignee=team.ana, last_inbound=timezone.now() - timedelta(hours=30)
    )
    before = state(conversation)

    # when
    response = api(team.ana).post(url(conversation), {"text": "Oi"}, format="json")

    # then
    assert response.status_code == 409
    assert "24 hours" in response.json()["detail"]
    assert state(conversation) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "detail"), [({"text": "   "}, "Type a message before sending."), ({"text": "x" * 4097}, None)]
)
def test_it_answers_400_for_a_text_it_cannot_send(team, make_conversation, api, body, detail) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(team.ana).post(url(conversation), body, format="json")

    # then
    assert response.status_code == 400
    if detail:
        assert response.json() == {"detail": detail}
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_answers_400_for_a_reply_to_a_message_of_another_conversation(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    elsewhere = received(make_conversation(Status.QUEUED), 9, timezone.now())
    before = state(conversation)

    # when
    response = api(team.ana).post(url(conversation), {"text": "Oi", "reply_to": elsewhere.pk}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {"detail": "That message is not in this conversation."}
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_the_wrong_method_on_messages(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    responses = [
        api(team.ana).delete(url(conversation)),
        api(team.ana).get(url(conversation, "media/")),
        api(team.ana).get(url(conversation, "template/")),
    ]

    # then
    assert [r.status_code for r in responses] == [405, 405, 405]
    assert state(conversation) == before


# --- Media ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_uploads_and_sends_a_file_outside_any_transaction(
    team, make_conversation, api, fake_graph: FakeGraph
) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)

    # when
    response = api(team.ana).post(
        url(conversation, "media/"),
        {"file": SimpleUploadedFile("foto.png", PNG, content_type="image/png"), "caption": "Segue"},
        format="multipart",
    )

    # then
    assert response.status_code == 201
    [message] = sent(conversation)
    assert (message.type, message.media_mime, message.caption) == ("image", "image/png", "Segue")
    assert message.media.read() == PNG
    assert response.json()["media"]["url"] == f"/console/media/{message.pk}/"
    assert [call.json["type"] for call in fake_graph.sends()] == ["image"]


@pytest.mark.django_db
def test_it_answers_400_for_a_file_whatsapp_does_not_take(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    before = state(conversation)

    # when
    response = api(team.ana).post(
        url(conversation, "media/"),
        {"file": SimpleUploadedFile("animado.gif", PNG, content_type="image/gif")},
        format="multipart",
    )

    # then
    assert response.status_code == 400
    assert response.json() == {"detail": "WhatsApp does not accept image/gif files as document."}
    assert state(conversation) == before


@pytest.mark.django_db(transaction=True)
def test_it_sends_no_file_after_the_window(team, make_conversation, api, fake_graph: FakeGraph) -> None:
    # given
    conversation = make_conversation(
        Status.ASSIGNED, assignee=team.ana, last_inbound=timezone.now() - timedelta(hours=30)
    )
    before = state(conversation)

    # when
    response = api(team.ana).post(
        url(conversation, "media/"),
        {"file": SimpleUploadedFile("f.png", PNG, content_type="image/png")},
        format="multipart",
    )

    # then
    assert response.status_code == 409
    assert state(conversation) == before
    assert fake_graph.requests == []


# --- Templates ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_sends_an_approved_template_after_the_window(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(
        Status.ASSIGNED, assignee=team.ana, last_inbound=timezone.now() - timedelta(hours=30)
    )
    approved_template(conversation)
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}]

    # when
    response = api(team.ana).post(
        url(conversation, "template/"),
        {"name": "pedido_atualizado", "language": "pt_BR", "components": components},
        format="json",
    )

    # then
    assert response.status_code == 201
    [message] = sent(conversation)
    assert message.type == "template"
    assert message.payload["template"] == {
        "name": "pedido_atualizado",
        "language": {"code": "pt_BR"},
        "components": components,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"name": "nao_existe", "language": "pt_BR"},
        {"name": "pedido_atualizado", "language": "en_US"},
        {"name": "pedido_atualizado", "language": "pt_BR", "components": "body"},
    ],
)
def test_it_answers_400_for_a_template_it_cannot_send(team, make_conversation, api, body) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    approved_template(conversation)
    before = state(conversation)

    # when
    response = api(team.ana).post(url(conversation, "template/"), body, format="json")

    # then
    assert response.status_code == 400
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_answers_400_for_a_template_that_is_not_approved(team, make_conversation, api) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, assignee=team.ana)
    template = approved_template(conversation)
    template.status = MessageTemplate.Status.REJECTED
    template.save()
    before = state(conversation)

    # when
    response = api(team.ana).post(
        url(conversation, "template/"), {"name": "pedido_atualizado", "language": "pt_BR"}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {"detail": "Choose one of this inbox's approved templates."}
    assert state(conversation) == before
