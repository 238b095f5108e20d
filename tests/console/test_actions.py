"""The console's ownership actions (take over, transfer, close, reopen), labels, customer
notes, the canned-response picker and "next waiting": every action, every refusal (which
changes nothing), HTMX fragments vs plain redirects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import CannedResponse, Conversation, Label, Message
from handoffs.models import OwnershipChange

# Also loaded as a plugin (its fixtures) below: let pytest rewrite it before this import.
pytest.register_assert_rewrite("tests.console.actions_support")
from tests.console.actions_support import HTMX, state  # noqa: E402

pytest_plugins = ["tests.console.actions_support"]

Status = Conversation.Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def url(name: str, conversation: Conversation) -> str:
    return reverse(f"console:{name}", args=[conversation.pk])


# --- Take over -----------------------------------------------------------------------------------


def test_it_takes_over_a_queued_conversation_and_answers_the_fragments(
    team, make_conversation, login, django_assert_max_num_queries
) -> None:
    # given
    conversation = make_conversation(Status.QUEUED)
    client = login(team.ana)

    # when
    with django_assert_max_num_queries(24):
        response = client.post(url("take-over", conversation), **HTMX)

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.ana)
    body = response.content.decode()
    assert body.startswith('\n<section id="composer"') or '<section id="composer"' in body.split("\n", 3)[1]
    assert 'id="conversation-actions" class="conversation-actions" hx-swap-oob="true"' in body
    assert 'id="conversation-labels"' in body
    # now Ana may write: the composer has the text box, and no "take over" button is left
    assert 'name="text"' in body
    assert url("take-over", conversation) not in body
    assert "X-Console-Refusal" not in response.headers


def test_it_records_the_take_over_in_the_timeline(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)

    login(team.ana).post(url("take-over", conversation), {"reason": "ignored"}, **HTMX)

    event = Message.objects.get(conversation=conversation)
    assert (event.direction, event.type, event.sender_kind, event.sender) == ("internal", "event", "system", None)
    assert event.content == {
        "action": "take_over",
        "actor": team.ana.pk,
        "actor_name": "Ana",
        "to_status": "assigned",
        "to_name": "Ana",
        "reason": "",
    }
    assert OwnershipChange.objects.get(conversation=conversation).action == "take_over"


def test_it_redirects_a_plain_post_back_to_the_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)

    response = login(team.ana).post(url("take-over", conversation))

    assert response.status_code == 302
    assert response["Location"] == f"/console/c/{conversation.pk}/"
    assert Conversation.objects.get(pk=conversation.pk).assignee == team.ana


def test_it_refuses_a_take_over_of_a_conversation_someone_holds_with_409(team, make_conversation, login) -> None:
    # given: Ana holds it; the supervisor may see it and act on it, but not take it over
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)

    # when
    response = login(team.supervisor).post(url("take-over", conversation), **HTMX)

    # then
    assert response.status_code == 409
    assert response["X-Console-Refusal"] == "1"
    assert "Ana has already taken this conversation over." in response.content.decode()
    assert state(conversation) == before


def test_it_shows_a_plain_refusal_page_with_the_status(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)

    response = login(team.supervisor).post(url("take-over", conversation))

    assert response.status_code == 409
    body = response.content.decode()
    assert "Ana has already taken this conversation over." in body
    assert f'href="/console/c/{conversation.pk}/"' in body
    assert state(conversation) == before


@pytest.mark.parametrize("who", ["bruno", "outsider"])
def test_it_answers_404_to_whoever_may_not_see_the_conversation(team, make_conversation, login, who) -> None:
    # Bruno may not see Ana's conversation; Olga works in another inbox.
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)
    client = login(getattr(team, who))

    for name in ("take-over", "transfer", "close", "labels", "customer-notes", "send", "react", "send-template"):
        response = client.post(url(name, conversation), {"to": "queue", "text": "oi", "notes": "x"}, **HTMX)
        assert response.status_code == 404, name
        assert "Maria" not in response.content.decode()
    assert client.get(url("canned", conversation)).status_code == 404
    assert state(conversation) == before


def test_it_answers_403_to_an_attendant_who_may_read_but_not_act(team, make_conversation, login) -> None:
    # given: a closed conversation Bruno held; Ana serves the same customer now (so she may read it)
    old = make_conversation(Status.CLOSED, team.bruno)
    make_conversation(Status.QUEUED, customer=old.customer)
    before = state(old)

    # when
    response = login(team.ana).post(url("reopen", old), **HTMX)

    # then
    assert response.status_code == 403
    assert state(old) == before


def test_it_sends_anonymous_people_to_the_login_page(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    response = Client().post(url("take-over", conversation))

    assert response.status_code == 302
    assert "/console/" not in response["Location"].split("?")[0]
    assert state(conversation) == before


def test_it_refuses_get_on_the_actions(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)
    client = login(team.ana)

    for name in ("take-over", "transfer", "close", "reopen", "send", "react", "labels", "customer-notes"):
        assert client.get(url(name, conversation)).status_code == 405, name
    assert Conversation.objects.get(pk=conversation.pk).status == Status.QUEUED


def test_it_requires_the_csrf_token(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    response = login(team.ana, enforce_csrf_checks=True).post(url("take-over", conversation), **HTMX)

    assert response.status_code == 403
    assert state(conversation) == before


# --- Transfer ------------------------------------------------------------------------------------


def test_it_transfers_to_the_queue(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.ana).post(url("transfer", conversation), {"to": "queue", "reason": "fim do turno"}, **HTMX)

    # Ana may still see it (it waits in her inbox's queue), and is offered to take it back
    assert response.status_code == 200
    assert url("take-over", conversation) in response.content.decode()
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.QUEUED, None)
    assert OwnershipChange.objects.get(conversation=conversation).reason == "fim do turno"
    event = Message.objects.get(conversation=conversation, type="event")
    assert (event.content["action"], event.content["reason"]) == ("to_queue", "fim do turno")


def test_it_transfers_to_the_bot(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    login(team.ana).post(url("transfer", conversation), {"to": "bot"}, **HTMX)

    assert Conversation.objects.get(pk=conversation.pk).status == Status.BOT


def test_it_transfers_to_another_attendant_of_the_inbox(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.ana).post(url("transfer", conversation), {"to": str(team.bruno.pk)})

    # Bruno's now, and private to him: Ana goes back to the lists (not to a 404)
    assert response.status_code == 302
    assert response["Location"] == "/console/"
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.bruno)
    assert Message.objects.get(conversation=conversation, type="event").content["to_name"] == "Bruno"


def test_it_sends_an_htmx_screen_back_to_the_lists_after_giving_the_conversation_away(
    team, make_conversation, login
) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.ana).post(url("transfer", conversation), {"to": str(team.bruno.pk)}, **HTMX)

    assert (response.status_code, response["HX-Redirect"], response.content) == (204, "/console/", b"")
    assert Conversation.objects.get(pk=conversation.pk).assignee == team.bruno


def test_it_lets_a_supervisor_assign_a_queued_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)

    login(team.supervisor).post(url("transfer", conversation), {"to": str(team.ana.pk)}, **HTMX)

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.ASSIGNED, team.ana)
    assert OwnershipChange.objects.get(conversation=conversation).action == "assign"


@pytest.mark.parametrize("to", ["outsider", "admin", "nobody", ""])
def test_it_refuses_a_transfer_to_someone_outside_the_inbox(team, make_conversation, login, to) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)
    target = {"outsider": str(team.outsider.pk), "admin": str(team.admin.pk), "nobody": "999999", "": ""}[to]

    response = login(team.ana).post(url("transfer", conversation), {"to": target}, **HTMX)

    assert response.status_code == 400
    assert "Choose an attendant of this inbox, the queue or the bot." in response.content.decode()
    assert state(conversation) == before


def test_it_refuses_an_attendant_sending_a_queued_conversation_to_the_bot(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    response = login(team.ana).post(url("transfer", conversation), {"to": "bot"}, **HTMX)

    assert response.status_code == 403
    assert "Only a supervisor of this inbox can do this" in response.content.decode()
    assert state(conversation) == before


# --- Close and reopen ------------------------------------------------------------------------------


def test_it_closes_with_a_resolution_note(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.ana).post(url("close", conversation), {"resolution": "Pedido reenviado"}, **HTMX)

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.resolution) == (Status.CLOSED, "Pedido reenviado")
    assert conversation.closed is not None
    assert OwnershipChange.objects.get(conversation=conversation).reason == "Pedido reenviado"
    body = response.content.decode()
    assert "This conversation is closed." in body
    assert url("reopen", conversation) in body
    assert 'name="text"' not in body


def test_it_refuses_an_attendant_closing_a_queued_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.QUEUED)
    before = state(conversation)

    response = login(team.ana).post(url("close", conversation), {"resolution": "x"}, **HTMX)

    assert response.status_code == 403
    assert state(conversation) == before


def test_it_refuses_a_resolution_note_too_long(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)

    response = login(team.ana).post(url("close", conversation), {"resolution": "x" * 2001}, **HTMX)

    assert response.status_code == 400
    assert state(conversation) == before


def test_it_refuses_closing_a_closed_conversation(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.CLOSED, team.ana)
    before = state(conversation)

    response = login(team.supervisor).post(url("close", conversation), **HTMX)

    assert response.status_code == 409
    assert "This conversation is already closed." in response.content.decode()
    assert state(conversation) == before


def test_it_reopens_to_its_last_attendant(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.CLOSED, team.ana)

    response = login(team.ana).post(url("reopen", conversation), **HTMX)

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee, conversation.closed) == (Status.ASSIGNED, team.ana, None)


def test_it_refuses_reopening_where_the_customer_has_another_open_conversation(team, make_conversation, login) -> None:
    old = make_conversation(Status.CLOSED, team.ana)
    current = make_conversation(Status.QUEUED, customer=old.customer)
    before = state(old)

    response = login(team.ana).post(url("reopen", old), **HTMX)

    assert response.status_code == 409
    assert f"(#{current.pk})" in response.content.decode()
    assert state(old) == before


# --- Labels ---------------------------------------------------------------------------------------


def test_it_sets_the_labels_of_the_inbox_and_global_ones(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    mine = Label.objects.create(inbox=team.inbox, name="VIP")
    everywhere = Label.objects.create(inbox=None, name="Urgente")

    response = login(team.ana).post(url("labels", conversation), {"label": [mine.pk, everywhere.pk]}, **HTMX)

    assert response.status_code == 200
    assert sorted(conversation.labels.values_list("name", flat=True)) == ["Urgente", "VIP"]
    assert f'value="{mine.pk}" checked' in response.content.decode()


def test_it_adds_and_removes_one_label(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    vip = Label.objects.create(inbox=team.inbox, name="VIP")
    late = Label.objects.create(inbox=team.inbox, name="Atraso")
    conversation.labels.add(vip)
    client = login(team.ana)

    client.post(url("labels", conversation), {"add": late.pk}, **HTMX)
    assert sorted(conversation.labels.values_list("name", flat=True)) == ["Atraso", "VIP"]
    client.post(url("labels", conversation), {"remove": vip.pk})
    assert list(conversation.labels.values_list("name", flat=True)) == ["Atraso"]


@pytest.mark.parametrize("value", ["other-inbox", "garbage", "999999"])
def test_it_refuses_a_label_of_another_inbox(team, make_conversation, login, value) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    vip = Label.objects.create(inbox=team.inbox, name="VIP")
    conversation.labels.add(vip)
    foreign = Label.objects.create(inbox=team.other_inbox, name="Secreto")
    before = state(conversation)
    label = {"other-inbox": foreign.pk, "garbage": "x", "999999": 999999}[value]

    response = login(team.ana).post(url("labels", conversation), {"label": [vip.pk, label]}, **HTMX)

    assert response.status_code == 400
    assert "Choose labels of this inbox." in response.content.decode()
    assert "Secreto" not in response.content.decode()
    assert state(conversation) == before


# --- Customer notes ----------------------------------------------------------------------------------


def test_it_saves_the_customer_notes(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.ana).post(url("customer-notes", conversation), {"notes": " Prefere e-mail "}, **HTMX)

    assert response.status_code == 200
    conversation.customer.refresh_from_db()
    assert conversation.customer.notes == "Prefere e-mail"
    assert 'id="customer-notes"' in response.content.decode()
    assert "Saved." in response.content.decode()


def test_it_refuses_customer_notes_too_long(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    before = state(conversation)

    response = login(team.ana).post(url("customer-notes", conversation), {"notes": "x" * 5001}, **HTMX)

    assert response.status_code == 400
    assert state(conversation) == before


def test_it_escapes_customer_notes(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)

    response = login(team.ana).post(
        url("customer-notes", conversation), {"notes": "<img src=x onerror=alert(1)>"}, **HTMX
    )

    assert "<img src=x" not in response.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.content.decode()


# --- Canned responses ----------------------------------------------------------------------------------


def test_it_lists_the_matching_canned_responses_of_the_inbox_and_global_ones(team, make_conversation, login) -> None:
    conversation = make_conversation(Status.ASSIGNED, team.ana)
    CannedResponse.objects.create(inbox=team.inbox, shortcut="prazo", title="Prazo de entrega", text="Até 5 dias")
    CannedResponse.objects.create(inbox=None, shortcut="pix", title="Chave Pix", text="pix@loja.com")
    CannedResponse.objects.create(inbox=team.other_inbox, shortcut="promo", title="Outra loja", text="segredo")
    client = login(team.ana)

    everything = client.get(url("canned", conversation), {"q": "/"}, **HTMX).content.decode()
    matching = client.get(url("canned", conversation), {"q": "pr"}, **HTMX).content.decode()

    assert ('data-canned-text="Até 5 dias"' in everything, 'data-canned-text="pix@loja.com"' in everything) == (
        True,
        True,
    )
    assert "segredo" not in everything
    assert "/prazo" in matching
    assert "/pix" not in matching
    assert "promo" not in matching


# --- Next waiting -------------------------------------------------------------------------------------


def test_it_opens_the_oldest_waiting_conversation_the_user_may_take(team, make_conversation, login) -> None:
    now = timezone.now()
    make_conversation(Status.QUEUED, last_inbound=now - timedelta(minutes=5))
    oldest = make_conversation(Status.QUEUED, last_inbound=now - timedelta(minutes=30))
    make_conversation(Status.ASSIGNED, team.bruno, last_inbound=now - timedelta(hours=2))
    make_conversation(Status.BOT, last_inbound=now - timedelta(hours=2))
    make_conversation(Status.QUEUED, inbox=team.other_inbox, last_inbound=now - timedelta(hours=3))

    response = login(team.ana).get(reverse("console:next"))

    assert response.status_code == 302
    assert response["Location"] == f"/console/c/{oldest.pk}/"


def test_it_goes_to_the_queue_when_nothing_waits(team, make_conversation, login) -> None:
    make_conversation(Status.QUEUED, inbox=team.other_inbox)

    response = login(team.ana).get(reverse("console:next"))

    assert response.status_code == 302
    assert response["Location"] == "/console/?view=queue"
