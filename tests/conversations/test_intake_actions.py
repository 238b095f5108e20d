"""Where intake puts what it applies: reactions, edits and revokes on their message wherever it
is, echoes in the customer's conversation, statuses on our own sends only, the sender's own
contact block."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Customer, Message, OrphanStatus
from tests.conftest import envelope, status_payload, text_payload

ALICE = "5511900001111"
BOB = "5511900002222"


def _action(wamid: str, kind: str, target: str, *, wa_id: str = ALICE, timestamp: int = 1_750_000_100, **extra) -> dict:
    body = text_payload(wamid, wa_id=wa_id, timestamp=timestamp)
    item = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del item["text"]
    if kind == "reaction":
        item |= {"type": "reaction", "reaction": {"message_id": target, "emoji": extra.get("emoji", "👍")}}
    elif kind == "edit":
        item |= {
            "type": "edit",
            "edit": {"original_message_id": target, "message": {"type": "text", "text": {"body": extra["text"]}}},
        }
    else:
        item |= {"type": "revoke", "revoke": {"original_message_id": target}}
    return body


def _echo(wamid: str, text: str, *, to: str = ALICE) -> dict:
    body = envelope(
        {
            "contacts": [{"profile": {"name": "Alice"}, "wa_id": to}],
            "message_echoes": [
                {
                    "from": "5511900000000",
                    "to": to,
                    "id": wamid,
                    "timestamp": "1750000200",
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        }
    )
    body["entry"][0]["changes"][0]["field"] = "smb_message_echoes"
    return body


def _close(conversation: Conversation) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.CLOSED, closed=timezone.now())


# --- Reactions, edits and revokes -------------------------------------------------------------


@pytest.mark.django_db
def test_it_applies_a_reaction_to_a_message_of_a_closed_conversation_without_opening_one(inbox, post_webhook) -> None:
    # given: last week's conversation, closed
    post_webhook(text_payload("wamid.OLD", "Obrigada!", wa_id=ALICE))
    old = Conversation.objects.get()
    _close(old)

    # when
    post_webhook(_action("wamid.R1", "reaction", "wamid.OLD", emoji="❤️"))

    # then: applied, and the reaction lives beside its message
    assert Message.objects.get(wamid="wamid.OLD").reactions == {"customer": "❤️"}
    assert Conversation.objects.count() == 1
    reaction = Message.objects.get(wamid="wamid.R1")
    assert (reaction.conversation_id, reaction.target_wamid, reaction.action_pending) == (old.pk, "wamid.OLD", False)


@pytest.mark.django_db
def test_it_applies_an_edit_and_a_revoke_in_a_closed_conversation(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.E-OLD", "terça", wa_id=ALICE))
    post_webhook(text_payload("wamid.V-OLD", "oops", wa_id=ALICE))
    _close(Conversation.objects.get())

    # when
    post_webhook(_action("wamid.E1", "edit", "wamid.E-OLD", text="quarta"))
    post_webhook(_action("wamid.V1", "revoke", "wamid.V-OLD"))

    # then
    edited = Message.objects.get(wamid="wamid.E-OLD")
    assert (edited.text, edited.edit_history[0]["text"]) == ("quarta", "terça")
    assert Message.objects.get(wamid="wamid.V-OLD").revoked == datetime.fromtimestamp(1_750_000_100, tz=UTC)
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_keeps_an_edit_that_arrives_before_its_message_and_applies_it_when_the_message_arrives(
    inbox, post_webhook
) -> None:
    # given: WhatsApp delivered the edit first
    post_webhook(_action("wamid.EARLY-EDIT", "edit", "wamid.LATE", text="versão nova", timestamp=1_750_000_100))
    edit = Message.objects.get(wamid="wamid.EARLY-EDIT")
    assert (edit.target_wamid, edit.action_pending) == ("wamid.LATE", True)

    # when
    post_webhook(text_payload("wamid.LATE", "versão velha", wa_id=ALICE, timestamp=1_750_000_000))

    # then
    late = Message.objects.get(wamid="wamid.LATE")
    assert late.text == "versão nova"
    assert late.edit_history == [
        {
            "text": "versão velha",
            "caption": "",
            "replaced_at": datetime.fromtimestamp(1_750_000_100, tz=UTC).isoformat(),
            "by_wamid": "wamid.EARLY-EDIT",
        }
    ]
    edit.refresh_from_db()
    assert edit.action_pending is False
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_applies_waiting_reactions_in_whatsapp_order(inbox, post_webhook) -> None:
    # given: two reactions to a message not seen yet, the later one delivered first
    post_webhook(_action("wamid.RB", "reaction", "wamid.T", emoji="😂", timestamp=1_750_000_200))
    post_webhook(_action("wamid.RA", "reaction", "wamid.T", emoji="👍", timestamp=1_750_000_100))

    # when
    post_webhook(text_payload("wamid.T", "piada", wa_id=ALICE))

    # then: the latest reaction wins
    assert Message.objects.get(wamid="wamid.T").reactions == {"customer": "😂"}
    assert not Message.objects.filter(action_pending=True).exists()


@pytest.mark.django_db
def test_it_never_applies_another_customers_waiting_reaction(inbox, post_webhook) -> None:
    # given: Bob reacts to a wamid he guessed, before Alice's message with that wamid arrives
    post_webhook(_action("wamid.BOB-R", "reaction", "wamid.ALICE-MSG", wa_id=BOB, emoji="😡"))

    # when
    post_webhook(text_payload("wamid.ALICE-MSG", "segredo", wa_id=ALICE))

    # then
    assert Message.objects.get(wamid="wamid.ALICE-MSG").reactions == {}
    assert Message.objects.get(wamid="wamid.BOB-R").action_pending is True


@pytest.mark.django_db
def test_it_keeps_a_waiting_reaction_in_the_latest_conversation_instead_of_opening_one(inbox, post_webhook) -> None:
    # given: a closed conversation and no open one
    post_webhook(text_payload("wamid.BEFORE", wa_id=ALICE))
    old = Conversation.objects.get()
    _close(old)

    # when: a reaction to a message we never stored (sent before the number joined Atende)
    post_webhook(_action("wamid.R-UNKNOWN", "reaction", "wamid.NEVER-SEEN"))

    # then
    assert Conversation.objects.count() == 1
    reaction = Message.objects.get(wamid="wamid.R-UNKNOWN")
    assert (reaction.conversation_id, reaction.action_pending) == (old.pk, True)


@pytest.mark.django_db
def test_it_puts_a_reaction_to_an_old_message_beside_it_even_while_another_conversation_is_open(
    inbox, post_webhook
) -> None:
    # given: an old closed conversation and a new open one
    post_webhook(text_payload("wamid.OLD2", "primeira", wa_id=ALICE))
    old = Conversation.objects.get()
    _close(old)
    post_webhook(text_payload("wamid.NEW2", "segunda", wa_id=ALICE, timestamp=1_750_000_500))
    current = Conversation.objects.exclude(pk=old.pk).get()

    # when
    post_webhook(_action("wamid.R-OLD2", "reaction", "wamid.OLD2"))

    # then
    assert Message.objects.get(wamid="wamid.OLD2").reactions == {"customer": "👍"}
    assert Message.objects.get(wamid="wamid.R-OLD2").conversation_id == old.pk
    assert Conversation.objects.count() == 2
    assert current.messages.count() == 1


@pytest.mark.django_db
def test_it_does_not_let_a_customer_edit_or_revoke_our_message(inbox, post_webhook) -> None:
    # given: our message in Alice's conversation
    post_webhook(text_payload("wamid.HI", wa_id=ALICE))
    ours = Message.objects.create(
        conversation=Conversation.objects.get(),
        direction="out",
        sender_kind="attendant",
        type="text",
        text="Consulta às 14h",
        wamid="wamid.OURS",
        status="sent",
    )

    # when
    post_webhook(_action("wamid.FAKE-EDIT", "edit", "wamid.OURS", text="Consulta grátis"))
    post_webhook(_action("wamid.FAKE-REVOKE", "revoke", "wamid.OURS"))

    # then
    ours.refresh_from_db()
    assert (ours.text, ours.edit_history, ours.revoked) == ("Consulta às 14h", [], None)


# --- Echoes -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_puts_an_echo_in_the_customers_open_conversation(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.Q", "Vocês abrem sábado?", wa_id=ALICE))
    conversation = Conversation.objects.get()

    # when: someone at the business answers from the WhatsApp Business app
    post_webhook(_echo("wamid.ECHO1", "Abrimos sim, das 8h às 12h"))

    # then
    echo = Message.objects.get(wamid="wamid.ECHO1")
    assert (echo.conversation_id, echo.direction, echo.sender_kind) == (conversation.pk, "out", "phone_app")
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_opens_a_conversation_for_people_not_for_the_bot_on_an_echo(inbox, post_webhook) -> None:
    # when: the business writes first, from the phone
    post_webhook(_echo("wamid.ECHO2", "Olá, seu pedido chegou"))

    # then
    conversation = Conversation.objects.get()
    assert conversation.status == Conversation.Status.QUEUED
    assert conversation.last_inbound is None


# --- Contacts -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_does_not_rename_the_sender_after_a_contact_block_naming_another_number(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.C1", "oi", wa_id=ALICE, name="Alice Souza"))

    # when: a body whose only contact block is someone else's
    body = text_payload("wamid.C2", "de novo", wa_id=ALICE)
    body["entry"][0]["changes"][0]["value"]["contacts"] = [{"profile": {"name": "Impostor"}, "wa_id": BOB}]
    post_webhook(body)

    # then
    assert Customer.objects.get(wa_id=ALICE).name == "Alice Souza"
    assert not Customer.objects.filter(wa_id=BOB).exists()
    assert Message.objects.get(wamid="wamid.C2").conversation.customer.wa_id == ALICE


@pytest.mark.django_db
def test_it_still_uses_a_lone_contact_block_that_names_no_number(inbox, post_webhook) -> None:
    body = text_payload("wamid.C3", wa_id=ALICE)
    body["entry"][0]["changes"][0]["value"]["contacts"] = [{"profile": {"name": "Alice do Salão"}}]

    post_webhook(body)

    assert Customer.objects.get(wa_id=ALICE).name == "Alice do Salão"


# --- Statuses only for our sends --------------------------------------------------------------


@pytest.mark.django_db
def test_it_never_applies_a_status_to_a_customers_message(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.IN1", "oi", wa_id=ALICE))

    # when: statuses naming the customer's message
    for status, timestamp in (("delivered", 1_750_000_100), ("read", 1_750_000_200), ("played", 1_750_000_300)):
        post_webhook(status_payload("wamid.IN1", status, timestamp))

    # then
    message = Message.objects.get(wamid="wamid.IN1")
    assert (message.status, message.delivered_at, message.read_at, message.played_at) == (
        "received",
        None,
        None,
        None,
    )
    assert OrphanStatus.objects.count() == 0


@pytest.mark.django_db
def test_it_never_links_a_customers_message_by_callback_data(inbox, post_webhook) -> None:
    # given
    post_webhook(text_payload("wamid.IN2", "oi", wa_id=ALICE))
    inbound = Message.objects.get(wamid="wamid.IN2")

    # when: a status whose callback data names the inbound row
    post_webhook(
        status_payload("wamid.SOMETHING", "read", 1_750_000_100, biz_opaque_callback_data=inbound.callback_data)
    )

    # then
    inbound.refresh_from_db()
    assert (inbound.wamid, inbound.status, inbound.read_at) == ("wamid.IN2", "received", None)
    assert OrphanStatus.objects.get().wamid == "wamid.SOMETHING"


@pytest.mark.django_db
def test_it_refuses_to_attach_a_wamid_to_a_customers_message(inbox, post_webhook) -> None:
    post_webhook(text_payload("wamid.IN3", wa_id=ALICE))
    inbound = Message.objects.get(wamid="wamid.IN3")

    with pytest.raises(ValueError, match="inbound"):
        services.attach_wamid(inbound, "wamid.OTHER")

    inbound.refresh_from_db()
    assert inbound.wamid == "wamid.IN3"
