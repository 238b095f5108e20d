"""Every message type the intake stores renders on the conversation page (built through the
real webhook from the real samples), outbound ticks and media states show, hostile text
stays inert."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Message
from tests.console.actions_support import login, make_conversation, team  # noqa: F401
from tests.console.timeline_support import build_every_type

pytest_plugins = ["tests.conftest_graph"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

HOSTILE = '<img src=x onerror=alert(1)><script>alert("x")</script>'


@pytest.fixture
def every_type(inbox, fake_graph, post_webhook, django_capture_on_commit_callbacks) -> Conversation:
    return build_every_type(inbox, fake_graph, post_webhook, django_capture_on_commit_callbacks)


def _page(client, conversation: Conversation) -> str:
    response = client.get(reverse("console:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _element(html: str, message: Message) -> str:
    """The <li> of one message, up to the next one (or the end of the timeline)."""
    start = html.index(f'<li id="message-{message.pk}"')
    following = re.search(r'<li id="message-\d+"|</ol>', html[start + 10 :])
    return html[start : start + 10 + following.start()]


def _message(conversation: Conversation, wamid: str) -> Message:
    return Message.objects.get(conversation=conversation, wamid=wamid)


def _outbound(conversation: Conversation, **fields) -> Message:
    defaults = {
        "direction": Message.Direction.OUT,
        "sender_kind": Message.SenderKind.ATTENDANT,
        "type": "text",
        "text": "Olá!",
        "status": Message.Status.SENT,
    }
    return Message.objects.create(conversation=conversation, **{**defaults, **fields})


def test_it_renders_every_type_the_intake_stores(every_type: Conversation, team, login) -> None:  # noqa: F811
    # given
    client = login(team.supervisor)
    # when
    html = _page(client, every_type)
    # then: one element per shown message; reactions, edits and revokes are on their message
    shown = Message.objects.filter(conversation=every_type).exclude(type__in=["reaction", "edit", "revoke"])
    assert sorted(int(pk) for pk in re.findall(r'<li id="message-(\d+)"', html)) == sorted(m.pk for m in shown)
    by_wamid = {m.wamid: _element(html, m) for m in shown}
    assert "Does it come in another color?" in by_wamid["wamid.ALL.00"]
    assert '<li title="Customer">👍</li>' in by_wamid["wamid.ALL.00"]
    assert "From an ad: Chat with us" in by_wamid["wamid.ALL.01"]
    # edited, with its history; deleted, with what it said kept aside
    assert "Versão nova" in by_wamid["wamid.ALL.02"]
    assert "<summary>edited</summary>" in by_wamid["wamid.ALL.02"]
    assert "before: forwarded text" in by_wamid["wamid.ALL.02"]
    assert "Deleted by the customer" in by_wamid["wamid.ALL.03"]
    assert "Forwarded many times" in by_wamid["wamid.ALL.03"]
    # media through the access-checked view only
    image = _message(every_type, "wamid.ALL.04")
    assert f'<img src="/console/media/{image.pk}/" alt="Taj Mahal"' in by_wamid["wamid.ALL.04"]
    assert "js-lightbox" in by_wamid["wamid.ALL.04"]
    video = _message(every_type, "wamid.ALL.05")
    assert (
        f'<video class="msg__video" controls preload="metadata" src="/console/media/{video.pk}/">'
        in (by_wamid["wamid.ALL.05"])
    )
    assert "filename.pdf" in by_wamid["wamid.ALL.06"] and "309\xa0bytes" in by_wamid["wamid.ALL.06"]
    assert '<audio class="msg__audio" controls preload="none"' in by_wamid["wamid.ALL.07"]
    assert 'class="msg__sticker"' in by_wamid["wamid.ALL.08"]
    assert "lookaside.fbsbx.com" not in html
    # location with an OpenStreetMap link (no embedded map)
    assert "https://www.openstreetmap.org/?mlat=37.442215&amp;mlon=-122.161659" in by_wamid["wamid.ALL.09"]
    assert "Philz Coffee" in by_wamid["wamid.ALL.09"]
    assert "https://foursquare.com/v/5c42c5667d8497002c6e09f9" in by_wamid["wamid.ALL.10"]
    assert "<iframe" not in html
    # contact cards
    assert "Barbara J. Johnson" in by_wamid["wamid.ALL.11"] and "+1 (415) 555-0829" in by_wamid["wamid.ALL.11"]
    assert "CONTACT_EMAIL" in by_wamid["wamid.ALL.12"]
    # interactive and button replies
    assert "Pressed a button" in by_wamid["wamid.ALL.13"] and "<strong>Cancel</strong>" in by_wamid["wamid.ALL.13"]
    assert "Chose from the list" in by_wamid["wamid.ALL.14"] and "Next Day to 2 Days" in by_wamid["wamid.ALL.14"]
    assert "Filled in a form" in by_wamid["wamid.ALL.15"] and "Sheena Nelson" in by_wamid["wamid.ALL.15"]
    assert "<strong>SIM</strong>" in by_wamid["wamid.ALL.16"]
    assert "About product PRODUCT-7" in by_wamid["wamid.ALL.17"]
    # an order with its items and total
    assert "di9ozbzfi4" in by_wamid["wamid.ALL.18"] and "US$ 85.00" in by_wamid["wamid.ALL.18"]
    assert "Love these!" in by_wamid["wamid.ALL.18"]
    # WhatsApp's system notice and unsupported messages with Meta's reason
    assert "User Sheena Nelson changed from" in by_wamid["wamid.ALL.19"]
    assert "(edit)" in by_wamid["wamid.ALL.20"]
    assert "Message type is currently not supported. (131051)" in by_wamid["wamid.ALL.20"]
    assert "Unsupported message type" in by_wamid["wamid.ALL.22"]
    # a reply quoting its message, an echo from the business's phone
    first = _message(every_type, "wamid.ALL.00")
    assert f'<a class="msg__quote" href="#message-{first.pk}">' in by_wamid["wamid.ALL.X3"]
    assert "sent from the phone" in by_wamid["wamid.ALL.ECHO"]
    assert 'class="tick tick--sent"' in by_wamid["wamid.ALL.ECHO"]


def test_it_shows_the_ad_that_started_the_conversation(team, login, make_conversation) -> None:  # noqa: F811
    # given
    referral = {"headline": "Promoção de verão", "body": "Corte + escova", "source_url": "https://fb.me/x"}
    conversation = make_conversation(referral=referral)
    # when
    html = _page(login(team.ana), conversation)
    # then: at the start of the timeline and in the customer panel
    assert "The customer came from an ad:" in html
    assert "<strong>Promoção de verão</strong>" in html
    assert 'href="https://fb.me/x" rel="noopener noreferrer nofollow" target="_blank">Open the ad</a>' in html


@pytest.mark.parametrize(
    ("status", "icon", "label"),
    [
        (Message.Status.PENDING, "🕓", "Waiting to be sent"),
        (Message.Status.SENDING, "🕓", "Sending"),
        (Message.Status.SENT, "✓", "Sent"),
        (Message.Status.DELIVERED, "✓✓", "Delivered"),
        (Message.Status.READ, "✓✓", "Read"),
        (Message.Status.PLAYED, "✓✓▶", "Played"),
        (Message.Status.FAILED, "⚠", "Failed"),
        (Message.Status.UNCONFIRMED, "?", "Not confirmed"),
    ],
)
def test_it_shows_the_delivery_tick_of_an_outbound_message(
    status: str,
    icon: str,
    label: str,
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    message = _outbound(conversation, status=status, sender=team.ana)
    # when
    element = _element(_page(login(team.ana), conversation), message)
    # then
    assert f'<span class="tick tick--{status}" title="{label}">' in element
    assert f'<span aria-hidden="true">{icon}</span>' in element


def test_it_shows_metas_reason_for_a_failed_message(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    message = _outbound(
        conversation,
        status=Message.Status.FAILED,
        wamid="wamid.F1",
        error_code=131047,
        error_title="Re-engagement message",
        error_details="Message failed to send because more than 24 hours have passed",
    )
    # when
    element = _element(_page(login(team.ana), conversation), message)
    # then: failed after Meta accepted it: the reason, and no "send again" (that copy exists)
    assert (
        "Not delivered. Re-engagement message — Message failed to send because more than 24 hours have passed "
        "(131047)" in element
    )
    assert "send-again" not in element


def test_it_offers_send_again_for_a_message_whatsapp_did_not_confirm(
    team,  # noqa: F811
    login,  # noqa: F811
    make_conversation,  # noqa: F811
) -> None:
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    message = _outbound(conversation, status=Message.Status.UNCONFIRMED)
    # when
    element = _element(_page(login(team.ana), conversation), message)
    # then
    assert "it may or may not have reached the customer" in element
    url = reverse("console:send-again", args=[conversation.pk, message.pk])
    assert f'action="{url}"' in element
    assert "Send again" in element


def test_it_hides_send_again_from_someone_who_may_only_read(team, login, make_conversation) -> None:  # noqa: F811
    # given: Ana's conversation, closed; Bruno reads the customer's history from his queue
    closed = make_conversation(status=Conversation.Status.CLOSED, assignee=team.ana)
    make_conversation(customer=closed.customer)
    message = _outbound(closed, status=Message.Status.UNCONFIRMED)
    # when
    element = _element(_page(login(team.bruno), closed), message)
    # then
    assert "Not confirmed" in element
    assert "Send again" not in element


def test_it_shows_media_waiting_and_failed_downloads(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    common = {"direction": Message.Direction.IN, "sender_kind": Message.SenderKind.CUSTOMER, "media_id": "M"}
    waiting = Message.objects.create(
        conversation=conversation, type="image", media_status=Message.MediaStatus.PENDING, **common
    )
    failed = Message.objects.create(
        conversation=conversation,
        type="document",
        media_status=Message.MediaStatus.FAILED,
        media_error="The file is larger than WhatsApp allows.",
        **common,
    )
    # when
    html = _page(login(team.ana), conversation)
    # then
    assert "Image: downloading from WhatsApp…" in _element(html, waiting)
    assert "Document: the file could not be downloaded from WhatsApp." in _element(html, failed)
    assert "The file is larger than WhatsApp allows." in _element(html, failed)
    assert "/console/media/" not in html


def test_it_renders_system_events_translated_and_notes_apart(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    event = services.record_event(conversation, "take_over", actor=team.ana.pk, actor_name="Ana", to_name="Ana")
    transfer = services.record_event(conversation, "transfer", actor_name="Ana", to_name="Bruno", reason="Férias")
    note = services.add_note(conversation, team.ana, "Cliente *VIP*")
    # when
    html = _page(login(team.supervisor), conversation)
    # then
    assert "Ana took the conversation over" in _element(html, event)
    assert "Ana transferred the conversation to Bruno" in _element(html, transfer)
    assert "Férias" in _element(html, transfer)
    note_html = _element(html, note)
    assert 'class="msg msg--internal msg--type-note"' in note_html
    assert "Internal note: the customer does not see it" in note_html
    assert "Cliente <strong>VIP</strong>" in note_html


def test_it_renders_an_event_from_its_names_at_display_time(team, login, make_conversation) -> None:  # noqa: F811
    # given: the event keeps names, not a sentence (so each reader gets their language)
    conversation = make_conversation()
    event = services.record_event(conversation, "close", actor_name="Ana")
    unknown = services.record_event(conversation, "merged")
    # when
    html = _page(login(team.supervisor), conversation)
    # then
    assert event.text == ""
    assert "Ana closed the conversation" in _element(html, event)
    assert "Event: merged" in _element(html, unknown)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "text", "text": HOSTILE},
        {"type": "image", "caption": HOSTILE},
        {"type": "document", "media_filename": HOSTILE + ".pdf", "media_status": "failed", "media_error": HOSTILE},
        {"type": "location", "content": {"name": HOSTILE, "address": HOSTILE, "url": "javascript:alert(1)"}},
        {
            "type": "contacts",
            "content": {"contacts": [{"name": {"formatted_name": HOSTILE}, "phones": [{"phone": HOSTILE}]}]},
        },
        {
            "type": "interactive",
            "text": HOSTILE,
            "content": {"type": "button_reply", "button_reply": {"title": HOSTILE}},
        },
        {"type": "order", "text": HOSTILE, "content": {"product_items": [{"product_retailer_id": HOSTILE}]}},
        {"type": "unsupported", "error_title": HOSTILE, "error_details": HOSTILE, "content": {"type": HOSTILE}},
        {"type": HOSTILE[:40], "text": HOSTILE},
        {"type": "text", "text": "ok", "reactions": {"customer": HOSTILE}},
        {"type": "text", "text": "ok", "referral": {"headline": HOSTILE, "source_url": "javascript:alert(1)"}},
        {
            "type": "text",
            "text": "ok",
            "edited": timezone.now(),
            "edit_history": [{"text": HOSTILE, "replaced_at": "x"}],
        },
    ],
)
def test_it_keeps_hostile_customer_text_inert(fields, team, login, make_conversation) -> None:  # noqa: F811
    # given
    customer_fields = {"direction": Message.Direction.IN, "sender_kind": Message.SenderKind.CUSTOMER}
    conversation = make_conversation()
    conversation.customer.name = HOSTILE
    conversation.customer.notes = HOSTILE
    conversation.customer.save()
    message = Message.objects.create(conversation=conversation, **{**customer_fields, **fields})
    # when
    html = _page(login(team.supervisor), conversation)
    # then
    assert "<img src=x" not in html
    assert '<script>alert("x")' not in html
    assert 'href="javascript' not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in _element(html, message)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_it_keeps_hostile_text_inert_in_a_reply_quote(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    common = {"direction": Message.Direction.IN, "sender_kind": Message.SenderKind.CUSTOMER, "type": "text"}
    quoted = Message.objects.create(conversation=conversation, text=HOSTILE, **common)
    reply = Message.objects.create(
        conversation=conversation,
        text="e aí?",
        reply_to=quoted,
        wa_timestamp=timezone.now() + timedelta(seconds=1),
        **common,
    )
    # when
    html = _page(login(team.ana), conversation)
    # then
    assert "&lt;img src=x onerror=alert(1)&gt;" in _element(html, reply)
    assert "<img src=x" not in html


def test_it_names_who_wrote_each_message(team, login, make_conversation) -> None:  # noqa: F811
    # given: the customer has no profile name
    conversation = make_conversation()
    conversation.customer.name = ""
    conversation.customer.save()
    customer = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="text",
        text="oi",
    )
    bot = _outbound(conversation, sender_kind=Message.SenderKind.BOT)
    attendant = _outbound(conversation, sender=team.ana)
    phone = _outbound(conversation, sender_kind=Message.SenderKind.PHONE_APP)
    # when
    html = _page(login(team.supervisor), conversation)
    # then
    sender = re.compile(r'<span class="msg__sender">([^<]*)</span>')
    assert sender.search(_element(html, customer)).group(1) == "Customer"
    assert sender.search(_element(html, bot)).group(1) == "Bot"
    assert sender.search(_element(html, attendant)).group(1) == "Ana"
    assert sender.search(_element(html, phone)).group(1) == "WhatsApp Business app"


def test_order_amounts_are_written_the_brazilian_way_in_portuguese() -> None:
    from django.utils import translation

    from console.templatetags.console_tags import money, order_total

    order = {
        "product_items": [
            {"product_retailer_id": "kit", "quantity": 1, "item_price": 1249.9, "currency": "BRL"},
            {"product_retailer_id": "escova", "quantity": 2, "item_price": "19.9", "currency": "BRL"},
        ]
    }
    with translation.override("pt-br"):
        assert (money(1249.9, "BRL"), order_total(order)) == ("R$ 1.249,90", "R$ 1.289,70")
    with translation.override("en"):
        assert (money(1249.9, "BRL"), order_total(order)) == ("R$ 1,249.90", "R$ 1,289.70")
    # Mixed currencies add up to nothing; what is not a number shows as it came
    assert order_total({"product_items": [*order["product_items"], {"item_price": 1, "currency": "USD"}]}) == ""
    assert money("grátis", "BRL") == "grátis BRL"
