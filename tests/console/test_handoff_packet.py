"""What the console shows of the bot and its handoffs: the packet at the top of the
conversation (the open handoff or the latest, escaped, live), the queue rows' reason and
priority (no query per row), voice-note transcripts, each bot message's model, tokens, cost
and latency (no query per message), and the timeline's new events."""

# The fixtures are imported from live_helpers, and pytest passes them back as arguments.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bots.models import BotRun
from conversations import services
from conversations.models import Conversation, Message
from handoffs import services as handoffs
from handoffs.models import Handoff
from tests.console.live_helpers import (  # noqa: F401 -- fixtures
    connect,
    frames,
    layer,
    live,
    make_conversation,
    sync,
    team,
)

pytestmark = pytest.mark.usefixtures("english")
Status = Conversation.Status

LEAD = {
    "name": "Maria <b>Souza</b>",
    "service": "Corte e escova",
    "preferred_day": "sexta-feira",
    "preferred_time": "15h",
    "source": "Instagram",
    "notes": "alérgica a amônia",
    "pet": "Rex",
}


def page(user: Any, conversation: Conversation) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("console:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    return response.content.decode()


def header_of(html: str) -> str:
    return html[
        html.index('id="conversation-header"') : html.index("</header>", html.index('id="conversation-header"'))
    ]


def packet_of(html: str) -> str:
    start = html.index('id="handoff-packet"')
    return html[start : html.index("</details>", start)]


def inbound(conversation: Conversation, text: str = "Oi", **fields: Any) -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type=fields.pop("type", "text"),
        text=text,
        wamid=f"wamid.{conversation.pk}.{Message.objects.count()}",
        wa_timestamp=fields.pop("wa_timestamp", timezone.now()),
        **fields,
    )


def bot_reply(conversation: Conversation, text: str, **run: Any) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.BOT,
        type="text",
        text=text,
        status=Message.Status.SENT,
        wa_timestamp=timezone.now(),
    )
    BotRun.objects.create(
        conversation=conversation,
        reply=message,
        outcome=BotRun.Outcome.REPLIED,
        engine=run.pop("engine", BotRun.Engine.LLM),
        **run,
    )
    return message


def hand_over(conversation: Conversation, **packet: Any) -> Handoff:
    with transaction.atomic():
        return handoffs.request_handoff(conversation, **packet)


# --- The packet ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_shows_the_open_handoff_at_the_top_of_the_conversation(team, make_conversation) -> None:
    # given: the bot hands a complaint over, with a summary and a lead in the customer's words
    conversation = make_conversation(Status.BOT, name="Maria Souza")
    inbound(conversation, "Quero falar com a gerente, o corte ficou torto")
    hand_over(
        conversation,
        reason=Handoff.Reason.COMPLAINT,
        priority=Handoff.Priority.URGENT,
        summary="Cliente diz: <script>alert(1)</script> corte torto",
        detail="pediu a gerente",
        lead=LEAD,
    )

    # when
    html = page(team.ana, conversation)

    # then: in the header, open, every part of the packet, escaped
    header = header_of(html)
    packet = packet_of(header)
    assert re.search(r'^id="handoff-packet" class="handoff-packet" open>', packet)
    assert "Complaint" in packet
    assert "handoff-priority--3" in packet and "Priority: Urgent" in packet
    assert "pediu a gerente" in packet
    assert "&lt;script&gt;alert(1)&lt;/script&gt; corte torto" in packet
    assert "<script>alert(1)" not in html
    assert "Maria &lt;b&gt;Souza&lt;/b&gt;" in packet
    for label, value in (
        ("Name", "Maria"),
        ("Service", "Corte e escova"),
        ("Preferred day", "sexta-feira"),
        ("Preferred time", "15h"),
        ("How they found us", "Instagram"),
        ("Notes", "alérgica a amônia"),
        ("pet", "Rex"),
    ):
        assert re.search(rf"<dt>{label}</dt><dd>{value}", packet), label
    assert "Requested" in packet and "waiting" in packet


@pytest.mark.django_db
def test_it_shows_the_latest_handoff_collapsed_with_its_rating_once_closed(team, make_conversation) -> None:
    conversation = make_conversation(Status.CLOSED)
    now = timezone.now()
    Handoff.objects.create(
        conversation=conversation,
        reason=Handoff.Reason.BILLING,
        summary="resumo antigo",
        requested=now - timedelta(days=3),
        closed=now - timedelta(days=3),
    )
    Handoff.objects.create(
        conversation=conversation,
        reason=Handoff.Reason.CUSTOMER_REQUEST,
        summary="resumo recente",
        requested=now - timedelta(hours=2),
        assigned=now - timedelta(hours=1),
        assignee=team.bruno,
        first_answered=now - timedelta(minutes=50),
        closed=now - timedelta(minutes=10),
        csat_asked=now - timedelta(minutes=9),
        csat_score=5,
        csat_answered=now - timedelta(minutes=8),
    )

    packet = packet_of(page(team.supervisor, conversation))

    assert re.search(r'^id="handoff-packet" class="handoff-packet handoff-packet--closed">', packet)
    assert "Last handoff from the bot" in packet
    assert "Customer asked for a person" in packet and "resumo recente" in packet
    assert "resumo antigo" not in packet
    assert "Bruno" in packet
    assert "Customer's rating" in packet and "5 of 5" in packet


@pytest.mark.django_db
def test_it_prefers_the_open_handoff_to_a_newer_closed_one(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    now = timezone.now()
    Handoff.objects.create(conversation=conversation, reason=Handoff.Reason.TOPIC, requested=now - timedelta(hours=1))
    Handoff.objects.create(
        conversation=conversation, reason=Handoff.Reason.BILLING, requested=now, closed=now
    )  # a row written out of order: still not the current one

    packet = packet_of(page(team.ana, conversation))

    assert "Topic handled by people" in packet
    assert "Payment or refund dispute" not in packet


@pytest.mark.django_db
def test_it_shows_no_packet_without_a_handoff(team, make_conversation) -> None:
    html = page(team.ana, make_conversation(Status.QUEUED))

    assert 'id="handoff-packet"' not in html


@pytest.mark.django_db
def test_it_asks_a_supervisor_for_an_unanswered_rating(team, make_conversation) -> None:
    conversation = make_conversation(Status.CLOSED)
    Handoff.objects.create(
        conversation=conversation, reason=Handoff.Reason.AUDIO, closed=timezone.now(), csat_asked=timezone.now()
    )

    assert "asked, no answer yet" in packet_of(page(team.supervisor, conversation))


@pytest.mark.django_db(transaction=True)
def test_it_redraws_the_packet_and_the_row_live_when_the_bot_hands_over(live, team, make_conversation) -> None:
    # given: the supervisor has the conversation open while the bot has it
    conversation = make_conversation(Status.BOT, name="Maria Souza")
    inbound(conversation, "cancelar meu plano")

    async def scenario() -> str:
        supervisor, _ = await connect(team.supervisor)
        await sync(supervisor, conversation.pk)
        # when
        await sync_to_async(hand_over)(
            conversation, reason=Handoff.Reason.CANCELLATION, priority=Handoff.Priority.HIGH, summary="quer cancelar"
        )
        received = "".join(await frames(supervisor))
        await supervisor.disconnect()
        return received

    received = async_to_sync(scenario)()

    # then: the header comes with the packet, the row with the reason and priority
    assert received.count('id="handoff-packet"') == 1
    assert "quer cancelar" in received
    row = received[received.index(f'id="conversation-row-{conversation.pk}"') :]
    assert "Cancellation" in row[: row.index("</li>")]
    assert "handoff-priority--2" in row[: row.index("</li>")]
    # and the timeline gets the event
    assert "The bot handed the conversation to a person: Cancellation" in received


# --- The queue's rows ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_shows_each_rows_reason_and_priority_without_a_query_per_row(
    team, make_conversation, django_assert_num_queries
) -> None:
    # given: one waiting conversation, then four
    first = make_conversation(Status.BOT, name="Primeira")
    hand_over(first, reason=Handoff.Reason.CUSTOMER_REQUEST, priority=Handoff.Priority.NORMAL)
    client = Client()
    client.force_login(team.ana)
    url = reverse("console:index") + "?view=queue"
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    for n, (reason, priority) in enumerate(
        [
            (Handoff.Reason.EMERGENCY, Handoff.Priority.URGENT),
            (Handoff.Reason.BILLING, Handoff.Priority.HIGH),
            (Handoff.Reason.FRUSTRATION, Handoff.Priority.LOW),
        ]
    ):
        conversation = make_conversation(Status.BOT, name=f"Cliente {n}")
        hand_over(conversation, reason=reason, priority=priority)

    # when / then: the same number of queries for four rows as for one
    with django_assert_num_queries(len(one.captured_queries)):
        html = client.get(url).content.decode()

    # and the queue runs by priority, each row with its reason
    shown = re.findall(r'handoff-priority--(\d)"[^>]*>[^<]*</span>\s*<span class="console-row__reason">([^<]+)<', html)
    assert [(int(p), r) for p, r in shown] == [
        (3, "Health emergency"),
        (2, "Payment or refund dispute"),
        (1, "Customer asked for a person"),
        (0, "Customer frustrated"),
    ]


@pytest.mark.django_db
def test_it_leaves_the_slot_empty_without_an_open_handoff(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED, name="Sem Pacote")
    Handoff.objects.create(conversation=conversation, reason=Handoff.Reason.BILLING, closed=timezone.now())
    client = Client()
    client.force_login(team.ana)

    html = client.get(reverse("console:index") + "?view=queue").content.decode()

    assert 'data-slot="handoff"></span>' in re.sub(r">\s+<", "><", html)
    assert "Payment or refund dispute" not in html


# --- Transcripts and bot turns -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_shows_a_voice_notes_transcript_under_the_player_escaped(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    audio = inbound(
        conversation, "", type="audio", transcript="Oi, <b>quero</b> marcar pra sexta", content={"voice": True}
    )

    html = page(team.ana, conversation)

    message = html[html.index(f'id="message-{audio.pk}"') :]
    message = message[: message.index("</li>")]
    assert "Transcript" in message
    assert "Oi, &lt;b&gt;quero&lt;/b&gt; marcar pra sexta" in message
    assert "<b>quero</b>" not in html


@pytest.mark.django_db
def test_it_shows_each_bot_messages_model_tokens_cost_and_latency(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)
    inbound(conversation, "Quanto custa o corte?")
    reply = bot_reply(
        conversation,
        "O corte custa R$ 90.",
        model="llama-3.3-70b-versatile",
        tokens_in=812,
        tokens_out=64,
        cost=Decimal("0.000160"),
        latency_ms=1234,
    )

    html = page(team.supervisor, conversation)

    message = html[html.index(f'id="message-{reply.pk}"') :]
    line = message[message.index('class="msg__botrun"') :]
    line = re.sub(r"\s+", " ", line[: line.index("</span>")])
    assert "llama-3.3-70b-versatile · 812 in / 64 out tokens · US$ 0.000160 · 1234 ms" in line


@pytest.mark.django_db
def test_it_shows_only_the_engine_and_latency_for_the_offline_bot(team, make_conversation) -> None:
    conversation = make_conversation(Status.BOT)
    reply = bot_reply(conversation, "Como posso ajudar?", engine=BotRun.Engine.OFFLINE, latency_ms=12)

    html = page(team.supervisor, conversation)

    message = html[html.index(f'id="message-{reply.pk}"') :]
    line = message[message.index('class="msg__botrun"') :]
    assert re.sub(r"\s+", " ", line[: line.index("</span>")]).endswith("Offline bot · 12 ms ")


@pytest.mark.django_db
def test_it_reads_every_bot_turn_of_the_page_in_one_query(team, make_conversation, django_assert_num_queries) -> None:
    conversation = make_conversation(Status.BOT)
    bot_reply(conversation, "primeira", model="m", tokens_in=1, tokens_out=1)
    client = Client()
    client.force_login(team.supervisor)
    url = reverse("console:conversation", args=[conversation.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    for n in range(8):
        bot_reply(conversation, f"resposta {n}", model="m", tokens_in=n, tokens_out=n)

    with django_assert_num_queries(len(one.captured_queries)):
        html = client.get(url).content.decode()

    assert html.count('class="msg__botrun"') == 9


# --- Timeline events -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_words_the_new_timeline_events(team, make_conversation) -> None:
    conversation = make_conversation(Status.QUEUED)
    with transaction.atomic():
        reopened = services.record_event(conversation, "reopen_by_customer")
        paused = services.record_event(conversation, "bot_paused_by_phone_app")
        handed = services.record_event(
            conversation, "handoff", reason="emergency", reason_label="Emergência", priority=3, detail="dor no peito"
        )
        unknown = services.record_event(conversation, "handoff", reason="new_reason", reason_label="Novo motivo")

    html = page(team.ana, conversation)

    def event(message: Message) -> str:
        part = html[html.index(f'id="message-{message.pk}"') :]
        return re.sub(r"\s+", " ", part[: part.index("</li>")])

    assert "The customer wrote again: conversation reopened" in event(reopened)
    assert "answered from the WhatsApp Business app" in event(paused)
    # The label in the reader's language, not the one stored when it happened; the details below.
    assert "The bot handed the conversation to a person: Health emergency" in event(handed)
    assert '<p class="msg__event-reason">dor no peito</p>' in event(handed)
    assert "emergency</p>" not in event(handed)
    assert "The bot handed the conversation to a person: Novo motivo" in event(unknown)
