"""The composer: replies (text, attachments, quotes, reactions), internal notes, templates after
the 24-hour window, send again; who may write; refusals change nothing; query budgets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation, Label, Message, MessageTemplate
from tests.fake_graph import FakeGraph

# Also loaded as a plugin (its fixtures) below: let pytest rewrite it before this import.
pytest.register_assert_rewrite("tests.console.actions_support")
from tests.console.actions_support import HTMX, state  # noqa: E402

pytest_plugins = ["tests.console.actions_support", "tests.conftest_graph"]

Status = Conversation.Status
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

pytestmark = [pytest.mark.usefixtures("english")]


def url(name: str, conversation: Conversation, *args: Any) -> str:
    return reverse(f"console:{name}", args=[conversation.pk, *args])


def received(conversation: Conversation, wamid: str = "wamid.IN1", text: str = "Oi") -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="text",
        text=text,
        wamid=wamid,
    )


def sent(conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, direction=Message.Direction.OUT).order_by("id"))


def approved_template(conversation: Conversation, **extra: Any) -> MessageTemplate:
    return MessageTemplate.objects.create(
        inbox=conversation.inbox,
        name="pedido_atualizado",
        language="pt_BR",
        category="UTILITY",
        status=MessageTemplate.Status.APPROVED,
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
            {"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu para entrega."},
        ],
        **extra,
    )


# --- Text, quotes, notes ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_sends_text_as_the_holder_and_answers_a_fresh_composer(
    team, make_conversation, login, django_assert_max_num_queries
) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    client = login(team.ana)

    # when
    # session, user, device, lookup, role x2, the send (lock, inbox, insert, touch), the fragments
    with django_assert_max_num_queries(24):
        response = client.post(url("send", conversation), {"text": "Olá, Maria!\nComo posso ajudar?"}, **HTMX)

    # then
    assert response.status_code == 200, response.content.decode()[:800]
    [message] = sent(conversation)
    assert (message.type, message.text, message.sender, message.status) == (
        "text",
        "Olá, Maria!\nComo posso ajudar?",
        team.ana,
        Message.Status.PENDING,
    )
    body = response.content.decode()
    assert '<section id="composer"' in body
    # the text box comes back empty
    assert "data-composer-text\n" in body or "></textarea>" in body


@pytest.mark.django_db
def test_it_sends_a_reply_quoting_a_message(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    question = received(conversation, "wamid.Q1", "Qual o prazo?")

    login(team.ana).post(url("send", conversation), {"text": "5 dias", "reply_to": question.pk}, **HTMX)

    [message] = sent(conversation)
    assert (message.reply_to, message.context_wamid) == (question, "wamid.Q1")
    assert message.payload["context"] == {"message_id": "wamid.Q1"}


@pytest.mark.django_db
def test_it_refuses_a_reply_to_a_message_of_another_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    other = make_conversation(Status.ASSIGNED, team.ana)
    foreign = received(other, "wamid.OTHER")
    before = state(conversation)

    response = login(team.ana).post(url("send", conversation), {"text": "oi", "reply_to": foreign.pk}, **HTMX)

    assert response.status_code == 400
    assert "That message is not in this conversation." in response.content.decode()
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_an_empty_message(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)

    response = login(team.ana).post(url("send", conversation), {"text": "   "}, **HTMX)

    assert response.status_code == 400
    assert "Type a message before sending." in response.content.decode()
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_saves_an_internal_note_that_is_never_sent(team, make_conversation, login) -> None:
    # given: queued; Ana may not write to the customer yet, but may leave a note
    conversation = make_conversation(Status.QUEUED)

    # when
    response = login(team.ana).post(url("send", conversation), {"text": "Cliente VIP", "note": "1"}, **HTMX)

    # then
    assert response.status_code == 200
    note = Message.objects.get(conversation=conversation)
    assert (note.direction, note.type, note.sender_kind, note.sender, note.text, note.payload, note.wamid) == (
        Message.Direction.INTERNAL,
        "note",
        Message.SenderKind.ATTENDANT,
        team.ana,
        "Cliente VIP",
        {},
        None,
    )
    assert sent(conversation) == []


@pytest.mark.django_db(transaction=True)
def test_it_never_sends_a_note_to_meta(team, make_conversation, login, fake_graph: FakeGraph) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    login(team.ana).post(url("send", conversation), {"text": "só para a equipe", "note": "1"}, **HTMX)

    assert Message.objects.filter(conversation=conversation, type="note").count() == 1
    assert fake_graph.requests == []


@pytest.mark.django_db
def test_it_refuses_an_empty_note(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)

    response = login(team.ana).post(url("send", conversation), {"text": " ", "note": "1"}, **HTMX)

    assert response.status_code == 400
    assert state(conversation) == before


# --- Who may write ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.QUEUED, Status.BOT])
def test_it_asks_an_attendant_to_take_over_before_writing(team, make_conversation, login, status) -> None:
    # given
    conversation = make_conversation(status)
    before = state(conversation)
    client = login(team.ana)

    # when
    response = client.post(url("send", conversation), {"text": "Oi"}, **HTMX)

    # then
    assert response.status_code == 403
    body = response.content.decode()
    assert "Take this conversation over to write to the customer." in body
    assert url("take-over", conversation) in body
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_lets_a_supervisor_write_on_a_queued_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)

    response = login(team.supervisor).post(url("send", conversation), {"text": "Já vamos atender"}, **HTMX)

    assert response.status_code == 200
    assert [m.text for m in sent(conversation)] == ["Já vamos atender"]


@pytest.mark.django_db
def test_it_lets_a_supervisor_write_on_someone_elses_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.supervisor).post(url("send", conversation), {"text": "Supervisão aqui"}, **HTMX)

    assert response.status_code == 200
    assert [m.sender for m in sent(conversation)] == [team.supervisor]


@pytest.mark.django_db
def test_it_refuses_writing_on_a_closed_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.CLOSED, team.ana)
    before = state(conversation)

    response = login(team.ana).post(url("send", conversation), {"text": "Oi"}, **HTMX)

    assert response.status_code == 409
    assert "This conversation is closed: reopen it to write to the customer." in response.content.decode()
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_text_after_the_window_and_offers_templates(team, make_conversation, login) -> None:
    # given: the customer last wrote 25 hours ago
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(hours=25))
    template = approved_template(conversation)
    MessageTemplate.objects.create(inbox=conversation.inbox, name="rascunho", language="pt_BR", status="PENDING")
    before = state(conversation)

    # when
    response = login(team.ana).post(url("send", conversation), {"text": "Oi"}, **HTMX)

    # then
    assert response.status_code == 409
    body = response.content.decode()
    assert "More than 24 hours have passed" in body
    assert "The 24-hour window closed on" in body
    assert f'name="template" value="{template.pk}"' in body
    assert 'name="header_1"' in body and 'name="body_1"' in body and 'name="body_2"' in body
    assert "rascunho" not in body
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_sending_from_a_paused_inbox(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    team.inbox.sending_paused_reason = "Token expirado"
    team.inbox.save()
    before = state(conversation)

    response = login(team.ana).post(url("send", conversation), {"text": "Oi"}, **HTMX)

    assert response.status_code == 409
    body = response.content.decode()
    assert "Sending from this inbox is paused until an administrator fixes it: Token expirado" in body
    # the composer now offers only an internal note
    assert ('name="file"' in body, 'name="note" value="1"' in body, "Save note" in body) == (False, True, True)
    assert state(conversation) == before


# --- Attachments ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("foto.png", "image/png", "image"),
        ("nota.pdf", "application/pdf", "document"),
        ("audio.ogg", "audio/ogg", "audio"),
        ("video.mp4", "video/mp4", "video"),
        ("animado.gif", "image/gif", "document"),
    ],
)
def test_it_sends_an_attachment_by_its_type(
    team, make_conversation, login, fake_graph: FakeGraph, name, mime, kind
) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    upload = SimpleUploadedFile(name, PNG, content_type=mime)
    caption = "Segue" if kind in ("image", "document", "video") else ""

    # when
    response = login(team.ana).post(url("send", conversation), {"text": caption, "file": upload}, **HTMX)

    # then
    if mime == "image/gif":
        # WhatsApp takes no GIF as an image nor as a document: refused with its reason, nothing stored
        assert response.status_code == 400
        assert "WhatsApp does not accept image/gif files as document." in response.content.decode()
        assert sent(conversation) == []
        return
    assert response.status_code == 200
    [message] = sent(conversation)
    assert (message.type, message.media_mime, message.media_filename, message.caption) == (kind, mime, name, caption)
    assert message.media.read() == PNG
    assert message.status == Message.Status.SENT
    assert [call.json["type"] for call in fake_graph.sends()] == [kind]


@pytest.mark.django_db(transaction=True)
def test_it_sends_no_attachment_after_the_window(team, make_conversation, login, fake_graph: FakeGraph) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(hours=30))
    before = state(conversation)

    response = login(team.ana).post(
        url("send", conversation), {"file": SimpleUploadedFile("f.png", PNG, content_type="image/png")}, **HTMX
    )

    assert response.status_code == 409
    assert state(conversation) == before
    assert fake_graph.requests == []


# --- Reactions ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_reacts_to_a_message(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    question = received(conversation, "wamid.Q2")

    response = login(team.ana).post(url("react", conversation), {"message": question.pk, "emoji": "👍"}, **HTMX)

    assert response.status_code == 200
    [reaction] = sent(conversation)
    assert (reaction.type, reaction.content) == ("reaction", {"message_id": "wamid.Q2", "emoji": "👍"})


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["note", "foreign", "missing"])
def test_it_refuses_a_reaction_to_a_message_it_cannot_react_to(team, make_conversation, login, target) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    other = make_conversation(Status.ASSIGNED, team.ana)
    message = {
        "note": lambda: (
            Message.objects.create(
                conversation=conversation, direction="internal", sender_kind="attendant", type="note", text="x"
            ).pk
        ),
        "foreign": lambda: received(other, "wamid.F").pk,
        "missing": lambda: 999999,
    }[target]()
    before = state(conversation)

    response = login(team.ana).post(url("react", conversation), {"message": message, "emoji": "👍"}, **HTMX)

    assert response.status_code == 400
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_a_reaction_from_an_attendant_who_does_not_hold_it(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)
    question = received(conversation, "wamid.Q3")
    before = state(conversation)

    response = login(team.ana).post(url("react", conversation), {"message": question.pk, "emoji": "👍"}, **HTMX)

    assert response.status_code == 403
    assert state(conversation) == before


# --- Templates ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_sends_a_template_with_its_parameters_after_the_window(
    team, make_conversation, login, fake_graph: FakeGraph
) -> None:
    # given
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(days=3))
    template = approved_template(conversation)

    # when
    response = login(team.ana).post(
        url("send-template", conversation),
        {"template": template.pk, "header_1": "#123", "body_1": "Maria", "body_2": "#123"},
        **HTMX,
    )

    # then
    assert response.status_code == 200
    [message] = sent(conversation)
    assert (message.type, message.status, message.sender) == ("template", Message.Status.SENT, team.ana)
    [call] = fake_graph.sends()
    assert call.json["template"] == {
        "name": "pedido_atualizado",
        "language": {"code": "pt_BR"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "#123"}]},
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "#123"}],
            },
        ],
    }


@pytest.mark.django_db
def test_it_sends_a_template_with_named_parameters(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=None)
    template = MessageTemplate.objects.create(
        inbox=conversation.inbox,
        name="boas_vindas",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Oi {{nome}}!"}],
    )

    login(team.ana).post(url("send-template", conversation), {"template": template.pk, "body_nome": "Ana"}, **HTMX)

    [message] = sent(conversation)
    assert message.content["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana", "parameter_name": "nome"}]}
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["missing-parameter", "not-approved", "other-inbox", "garbage"])
def test_it_refuses_a_template_it_cannot_send(team, make_conversation, login, case) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(days=3))
    template = approved_template(conversation)
    data: dict[str, Any] = {"template": template.pk, "header_1": "#1", "body_1": "Maria", "body_2": "#1"}
    if case == "missing-parameter":
        data["body_2"] = " "
    elif case == "not-approved":
        MessageTemplate.objects.filter(pk=template.pk).update(status="PAUSED")
    elif case == "other-inbox":
        MessageTemplate.objects.filter(pk=template.pk).update(inbox=team.other_inbox)
    else:
        data["template"] = "x"
    before = state(conversation)

    response = login(team.ana).post(url("send-template", conversation), data, **HTMX)

    assert response.status_code == 400
    assert state(conversation) == before


@pytest.mark.django_db
def test_it_refuses_a_template_from_an_attendant_who_must_take_over_first(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED, last_inbound=timezone.now() - timedelta(days=3))
    template = approved_template(conversation)
    before = state(conversation)

    response = login(team.ana).post(
        url("send-template", conversation),
        {"template": template.pk, "header_1": "#1", "body_1": "Maria", "body_2": "#1"},
        **HTMX,
    )

    assert response.status_code == 403
    assert state(conversation) == before


# --- Send again -----------------------------------------------------------------------------------------------


def unconfirmed(conversation: Conversation, user: Any) -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.ATTENDANT,
        sender=user,
        type="text",
        text="Oi",
        status=Message.Status.UNCONFIRMED,
        payload={"type": "text", "text": {"body": "Oi"}},
    )


@pytest.mark.django_db
def test_it_sends_an_unconfirmed_message_again(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    message = unconfirmed(conversation, team.ana)

    response = login(team.ana).post(url("send-again", conversation, message.pk), **HTMX)

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Message.Status.PENDING


@pytest.mark.django_db
def test_it_refuses_sending_again_a_delivered_message(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    message = unconfirmed(conversation, team.ana)
    Message.objects.filter(pk=message.pk).update(status=Message.Status.DELIVERED, wamid="wamid.D")

    response = login(team.ana).post(url("send-again", conversation, message.pk), **HTMX)

    assert response.status_code == 409
    assert Message.objects.get(pk=message.pk).status == Message.Status.DELIVERED


@pytest.mark.django_db
def test_it_refuses_sending_again_a_message_of_another_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    other = make_conversation(Status.ASSIGNED, team.bruno)
    message = unconfirmed(other, team.bruno)

    response = login(team.ana).post(url("send-again", conversation, message.pk), **HTMX)

    assert response.status_code == 400
    assert Message.objects.get(pk=message.pk).status == Message.Status.UNCONFIRMED


@pytest.mark.django_db
def test_it_refuses_sending_again_after_the_window(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(hours=26))
    message = unconfirmed(conversation, team.ana)

    response = login(team.ana).post(url("send-again", conversation, message.pk))

    assert response.status_code == 409
    assert Message.objects.get(pk=message.pk).status == Message.Status.UNCONFIRMED


# --- The composer as rendered ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_renders_the_composer_in_few_queries(team, make_conversation, login, django_assert_max_num_queries) -> None:
    from console.actions import composer_context

    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(days=2))
    for n in range(5):
        approved_template(conversation, meta_id=str(n)).__class__.objects.filter(meta_id=str(n)).update(
            name=f"modelo_{n}"
        )
    request = login(team.ana).get(reverse("console:next")).wsgi_request

    with django_assert_max_num_queries(8):
        context = composer_context(request, conversation)
        assert len(context["composer_templates"]) == 5
        assert context["may_reply"] is True
        assert context["window_open"] is False


@pytest.mark.django_db
def test_it_renders_the_message_actions_for_the_timeline(team, make_conversation) -> None:
    from django.template.loader import render_to_string

    conversation = make_conversation(Status.ASSIGNED, team.ana)
    message = unconfirmed(conversation, team.ana)
    inbound = received(conversation, "wamid.R", "<b>oi</b>")

    again = render_to_string(
        "console/composer.html#message-actions", {"message": message, "conversation": conversation}
    )
    quoted = render_to_string(
        "console/composer.html#message-actions", {"message": inbound, "conversation": conversation}
    )

    assert url("send-again", conversation, message.pk) in again
    assert url("react", conversation) in quoted
    assert 'data-reply-preview="&lt;b&gt;oi&lt;/b&gt;"' in quoted
    assert "send-again" not in quoted


@pytest.mark.django_db
def test_it_fits_in_the_conversation_page_without_taking_the_lists_names(
    team, make_conversation, login, django_assert_max_num_queries
) -> None:
    # given: a label of the inbox (the list column offers it as a filter, the composer as a chip)
    conversation = make_conversation(Status.ASSIGNED, team.ana, last_inbound=timezone.now() - timedelta(days=2))
    vip = Label.objects.create(inbox=team.inbox, name="VIP")
    approved_template(conversation)
    client = login(team.ana)

    # when
    with django_assert_max_num_queries(45):
        response = client.get(reverse("console:conversation", args=[conversation.pk]))

    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('<section id="composer"') == 1
    assert 'id="conversation-actions"' in body
    assert 'hx-swap-oob="true"' not in body
    assert f'<option value="{vip.pk}" >VIP</option>' in body or f'<option value="{vip.pk}">VIP</option>' in body
    assert f'name="label" value="{vip.pk}"' in body
    assert "The 24-hour window closed on" in body
    assert 'name="body_1"' in body
