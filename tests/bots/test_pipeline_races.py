"""The reply pipeline under the faults it claims to survive: a burst of lines, a person taking
over (or answering from the phone app) while the model's answer is in flight, two turns at once,
a lost reply task and a worker that died holding the lease."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from bots import pipeline, sweep
from bots.models import BotConfig, BotRun, BotState
from conversations import delivery, outbound
from conversations.models import Conversation, Inbox, Message
from handoffs import services as handoffs
from handoffs.models import Handoff
from tests.bots.pipeline_helpers import bot_messages, echo, register_bot_tasks, say
from tests.conftest import broker_down
from tests.fake_graph import FakeGraph, graph_error
from tests.fake_graph import Reply as FakeGraphReply
from tests.fake_openai import FakeOpenAI, Reply, answer

pytest_plugins = ["tests.conftest_graph", "tests.conftest_openai", "tests.bots.pipeline_support"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``target`` in a thread with its own database connection; its result or error kept."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:  # the test asserts on it
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def held_answer(text: str) -> tuple[Reply, threading.Event, threading.Event]:
    arrived, release = threading.Event(), threading.Event()
    reply = answer(text)
    reply.arrived, reply.hold = arrived, release
    return reply, arrived, release


def test_a_burst_of_three_lines_gets_one_reply(
    inbox: Inbox, chat: Conversation, line: Callable[..., Message], fake_openai: FakeOpenAI, llm_bot: BotConfig
) -> None:
    # given: three lines typed within a second (rows only: the tasks are driven by hand)
    start = timezone.now()
    llm_bot.burst_seconds = 2.0
    llm_bot.save()
    lines = [
        line(chat, "Oi", created=start),
        line(chat, "queria saber", created=start + timedelta(seconds=0.5)),
        line(chat, "o preço da escova", created=start + timedelta(seconds=1)),
    ]
    fake_openai.chat(answer("A escova custa R$ 60."))
    register_bot_tasks()

    with broker_down():
        # when: the first line's turn runs while the customer is still typing (a worker, not eager)
        early = pipeline.run_turn(chat.pk, now=start + timedelta(seconds=1.2))
        # then: it answers nothing yet (its re-scheduled turn is lost with the broker down)
        assert early is None
        assert fake_openai.chats() == []
        assert BotState.objects.get(pk=chat.pk).lease_token == ""

        # when: the burst has been quiet for its moment
        run = pipeline.run_turn(chat.pk, now=start + timedelta(seconds=3.5))
        # and the other lines' turns come late
        late = [pipeline.run_turn(chat.pk, now=start + timedelta(seconds=4)) for _ in lines[1:]]

    # then: one reply for the three lines, which the one model call read together
    assert run is not None and run.outcome == "replied" and run.trigger_id == lines[-1].pk
    assert late == [None, None]
    assert [m.text for m in bot_messages(chat)] == ["A escova custa R$ 60."]
    (request,) = fake_openai.chats()
    prompt = "\n".join(str(m.get("content")) for m in request["messages"] if m.get("role") == "user")
    assert all(text in prompt for text in ("Oi", "queria saber", "o preço da escova"))
    assert BotRun.objects.filter(conversation=chat).count() == 1


def test_a_person_taking_over_while_the_answer_is_in_flight_gets_no_bot_reply(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
    attendant: User,
) -> None:
    # given: the model's answer is held by the provider
    line(chat, "Oi, quanto custa?")
    reply, arrived, release = held_answer("Custa R$ 80.")
    fake_openai.chat(reply)
    thread, out = in_thread(lambda: pipeline.run_turn(chat.pk))
    assert arrived.wait(5)

    # when: a person takes the conversation, then the answer comes
    handoffs.take_over(chat, attendant)
    release.set()
    thread.join(10)

    # then: the bot sent nothing and its turn says it was dropped
    assert "error" not in out
    run = out["result"]
    assert run is not None and run.outcome == "dropped"
    assert bot_messages(chat) == []
    assert fake_graph.sends() == []
    assert Conversation.objects.get(pk=chat.pk).status == Conversation.Status.ASSIGNED


def test_an_echo_arriving_mid_reply_pauses_the_bot(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
) -> None:
    # given: the model's answer is held by the provider
    line(chat, "Oi, tem horário amanhã?")
    reply, arrived, release = held_answer("Temos às 10h.")
    fake_openai.chat(reply)
    thread, out = in_thread(lambda: pipeline.run_turn(chat.pk))
    assert arrived.wait(5)

    # when: someone answers from the WhatsApp Business app meanwhile
    echo(inbox, "Oi Maria! Tenho às 14h, pode ser?")
    release.set()
    thread.join(10)

    # then: the bot sent nothing, and it stays quiet: the conversation is with people
    assert "error" not in out
    assert out["result"].outcome == "dropped"
    assert bot_messages(chat) == []
    assert fake_graph.sends() == []
    conversation = Conversation.objects.get(pk=chat.pk)
    assert conversation.status == Conversation.Status.QUEUED
    assert Handoff.objects.get(conversation=chat).reason == Handoff.Reason.PHONE_APP


def test_the_turn_itself_pauses_the_bot_on_an_echo_it_finds(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
) -> None:
    # given: an echo row the echo receiver never saw (its signal lost with a dead worker)
    line(chat, "Oi")
    line(chat, "Já te respondo!", direction=Message.Direction.OUT, sender_kind=Message.SenderKind.PHONE_APP)
    fake_openai.chat(answer("Olá!"))

    # when
    run = pipeline.run_turn(chat.pk)

    # then
    assert run is not None and run.outcome == "dropped"
    assert bot_messages(chat) == []
    assert Conversation.objects.get(pk=chat.pk).status == Conversation.Status.QUEUED
    assert Handoff.objects.get(conversation=chat).reason == Handoff.Reason.PHONE_APP


@pytest.mark.postgres
def test_two_turns_at_once_send_one_reply(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
) -> None:
    # given: a customer's message whose reply task was delivered twice, to two workers
    line(chat, "Oi, vocês fazem unha?")
    fake_openai.chat(*[answer("Fazemos sim!", delay=0.3) for _ in range(2)])
    barrier = threading.Barrier(2)

    def turn() -> Any:
        barrier.wait(5)
        return pipeline.run_turn(chat.pk)

    # when
    workers = [in_thread(turn) for _ in range(2)]
    for thread, _out in workers:
        thread.join(15)

    # then
    results = [out.get("result") for _thread, out in workers]
    assert [out.get("error") for _thread, out in workers] == [None, None]
    assert sorted(r is None for r in results) == [False, True]
    assert len(fake_openai.chats()) == 1
    assert [m.text for m in bot_messages(chat)] == ["Fazemos sim!"]
    assert len(fake_graph.sends()) == 1


def test_the_sweep_answers_a_message_whose_task_was_lost(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    # given: the customer's message stored while the broker was down (its reply task lost)
    register_bot_tasks()
    with broker_down():
        message = say(inbox, "Boa tarde! Vocês abrem amanhã?")
    conversation = message.conversation
    assert bot_messages(conversation) == []
    fake_openai.chat(answer("Oi! Como posso ajudar?"))

    # then: not yet owed while the burst moment and the margin last
    assert sweep.overdue() == []

    # when: the sweep runs later
    later = timezone.now() + timedelta(seconds=llm_bot.burst_seconds + sweep.MARGIN_SECONDS + 1)
    assert sweep.queue_unanswered(later) == [conversation.pk]

    # then
    assert [m.text for m in bot_messages(conversation)] == ["Oi! Como posso ajudar?"]
    assert len(fake_graph.sends()) == 1
    assert sweep.overdue(later) == []


def test_the_sweep_takes_over_from_a_worker_that_died_holding_the_lease(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
) -> None:
    # given: a worker claimed the turn and died (its lease stays until it expires)
    message = line(chat, "Oi", created=timezone.now() - timedelta(minutes=1))
    BotState.objects.create(
        conversation=chat, lease_token="dead-worker", lease_until=timezone.now() + timedelta(seconds=60)
    )
    fake_openai.chat(answer("Olá, Maria!"))

    # then: while the lease lives, nobody else answers
    assert sweep.queue_unanswered() == []
    assert pipeline.run_turn(chat.pk) is None
    assert bot_messages(chat) == []

    # when: the lease has run out
    BotState.objects.filter(pk=chat.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert sweep.queue_unanswered() == [chat.pk]

    # then
    assert [m.text for m in bot_messages(chat)] == ["Olá, Maria!"]
    state = BotState.objects.get(pk=chat.pk)
    assert (state.handled_through, state.lease_token) == (message.pk, "")


def test_a_turn_whose_lease_was_taken_over_sends_nothing(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
    settings: Any,
) -> None:
    # given: a slow turn whose lease runs out while the model thinks
    settings.BOT_LEASE_SECONDS = 0.3
    line(chat, "Oi")
    slow, arrived, release = held_answer("Resposta atrasada.")
    fake_openai.chat(slow, answer("Resposta nova."))
    thread, out = in_thread(lambda: pipeline.run_turn(chat.pk))
    assert arrived.wait(5)

    # when: another worker takes the expired lease over and answers
    import time

    time.sleep(0.4)
    taken = pipeline.run_turn(chat.pk)
    release.set()
    thread.join(10)

    # then: one reply, from the worker holding the lease
    assert taken is not None and taken.outcome == "replied"
    assert out.get("result") is None and "error" not in out
    assert [m.text for m in bot_messages(chat)] == ["Resposta nova."]


def test_a_line_sent_while_the_bot_thinks_is_answered_after_the_turn(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
) -> None:
    # given: the bot is thinking about the first line
    line(chat, "Oi")
    slow, arrived, release = held_answer("Olá!")
    fake_openai.chat(slow, answer("A manicure custa R$ 40."))
    thread, out = in_thread(lambda: pipeline.run_turn(chat.pk))
    assert arrived.wait(5)

    # when: the customer writes again meanwhile (that line's own turn finds the lease taken)
    later = say(inbox, "e a manicure?")
    assert len(fake_openai.chats()) == 1
    release.set()
    thread.join(10)

    # then: the finished turn looks again and the second line gets its own answer
    assert "error" not in out
    assert [m.text for m in bot_messages(chat)] == ["Olá!", "A manicure custa R$ 40."]
    assert BotState.objects.get(pk=chat.pk).handled_through == later.pk
    second = fake_openai.chats()[1]
    assert "e a manicure?" in "\n".join(str(m.get("content")) for m in second["messages"] if m.get("role") == "user")


def test_a_customer_reopening_a_closed_conversation_gets_a_fresh_count_of_bot_replies(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig, attendant: User
) -> None:
    # given: a conversation where the bot replied, taken over and closed, reopenable for a day
    Inbox.objects.filter(pk=inbox.pk).update(reopen_hours=24)
    inbox.refresh_from_db()
    fake_openai.chat(answer("Olá!"), answer("De novo por aqui?"))
    first = say(inbox, "Oi").conversation
    assert BotState.objects.get(pk=first.pk).turns == 1
    handoffs.take_over(first, attendant)
    outbound.send_text(first, "Resolvido, Maria!", sender=attendant)
    handoffs.close(first, attendant)

    # when: the customer writes again within the hours (what the attendant wrote before the
    # close does not silence the bot now)
    again = say(inbox, "Oi de novo")

    # then: the same conversation, with the bot, which answered the new line (and only it)
    assert again.conversation_id == first.pk
    assert [m.text for m in bot_messages(first)] == ["Olá!", "De novo por aqui?"]
    state = BotState.objects.get(pk=first.pk)
    assert (state.turns, state.handled_through) == (1, again.pk)


def test_bot_sweep_answers_by_hand_what_the_sweep_would(
    inbox: Inbox,
    chat: Conversation,
    line: Callable[..., Message],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraph,
    llm_bot: BotConfig,
) -> None:
    # given: a message left unanswered a while ago (its task lost)
    line(chat, "Oi", created=timezone.now() - timedelta(minutes=5))
    fake_openai.chat(answer("Olá!"))
    out = io.StringIO()

    # when
    call_command("bot_sweep", stdout=out)

    # then
    assert out.getvalue().strip() == "replied=1"
    assert [m.text for m in bot_messages(chat)] == ["Olá!"]
    out = io.StringIO()
    call_command("bot_sweep", stdout=out)
    assert out.getvalue().strip() == "nothing to answer"


def test_the_sweep_leaves_alone_what_can_no_longer_be_answered(
    inbox: Inbox, chat: Conversation, line: Callable[..., Message], fake_openai: FakeOpenAI, llm_bot: BotConfig
) -> None:
    # given: a message from two days ago nobody answered (before the bot, or a long outage)
    old = line(chat, "Oi", created=timezone.now() - timedelta(days=2))
    Conversation.objects.filter(pk=chat.pk).update(last_inbound=timezone.now() - timedelta(days=2))

    # then: the sweep does not queue it, and a turn asked anyway costs no model call
    assert sweep.overdue() == []
    run = pipeline.run_turn(chat.pk)
    assert run is not None and run.outcome == "skipped"
    assert fake_openai.chats() == []
    assert BotState.objects.get(pk=chat.pk).handled_through == old.pk


def turn_with_broker_down(
    inbox: Inbox, fake_openai: FakeOpenAI, *, read_receipts: bool = True
) -> tuple[Message, pipeline.TurnResult | None]:
    """The customer asks when the business opens and the bots worker's turn answers, with a
    broker where no task can be queued (so nothing reaches Meta through the sending queue)."""
    register_bot_tasks()
    if not read_receipts:
        Inbox.objects.filter(pk=inbox.pk).update(read_receipts=False)
    fake_openai.chat(answer("Abrimos às 9h."))
    with broker_down():
        message = say(inbox, "Que horas vocês abrem?")
        return message, pipeline.run(message.conversation_id)


def test_the_bots_reply_goes_to_meta_from_the_bots_own_process_not_through_the_sending_queue(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    # given: the customer's message, and a broker where no task can be queued
    # when: the bots worker's turn runs
    message, result = turn_with_broker_down(inbox, fake_openai)

    # then: the reply reached Meta all the same, sent once and linked to its wamid
    assert result is not None and result.run.outcome == BotRun.Outcome.REPLIED
    (reply,) = bot_messages(message.conversation)
    assert (reply.status, reply.send_attempts) == (Message.Status.SENT, 1)
    assert reply.wamid.startswith("wamid.")
    assert [s.json["text"]["body"] for s in fake_graph.sends()] == ["Abrimos às 9h."]


def test_a_reply_meta_refuses_for_now_waits_for_its_retry_and_the_turn_still_counts(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    # given: Meta's rate limit on the first try; the retry task cannot even be queued (and no
    # read receipts, so the one call to Meta is the reply's)
    fake_graph.script("messages", graph_error(130429, status=429))

    # when
    message, result = turn_with_broker_down(inbox, fake_openai, read_receipts=False)

    # then: nothing raised, the turn is recorded, and the reply waits (pending, with Meta's
    # reason) for the send task or the outbound sweep, never lost and never sent twice
    assert result is not None and result.run.outcome == BotRun.Outcome.REPLIED
    (reply,) = bot_messages(message.conversation)
    assert (reply.status, reply.send_attempts, reply.error_code) == (Message.Status.PENDING, 1, 130429)
    assert len(fake_graph.sends()) == 1
    state = BotState.objects.get(pk=message.conversation_id)
    assert (state.handled_through, state.lease_token) == (message.pk, "")


def test_nothing_stored_by_a_turn_that_rolls_back_is_ever_delivered(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    # given
    register_bot_tasks()
    fake_openai.chat(answer("Abrimos às 9h."))
    with broker_down():
        message = say(inbox, "Que horas vocês abrem?")

        # when: the turn runs inside a transaction that is rolled back (as the "try the bot" page)
        with pytest.raises(RuntimeError), transaction.atomic():
            pipeline.run(message.conversation_id)
            raise RuntimeError("roll back")

    # then
    assert bot_messages(message.conversation) == []
    assert fake_graph.sends() == []


def test_the_typing_indicator_goes_out_from_the_bots_own_process_before_the_answer_is_ready(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    # given: a model that takes its time, and no broker to queue anything on
    register_bot_tasks()
    reply, arrived, release = held_answer("Abrimos às 9h.")
    fake_openai.chat(reply)
    with broker_down():
        message = say(inbox, "Que horas vocês abrem?")
        worker, out = in_thread(lambda: pipeline.run(message.conversation_id))
        assert arrived.wait(5)

        # when: the model is still thinking
        deadline = time.monotonic() + 5
        while not fake_graph.calls("messages") and time.monotonic() < deadline:
            time.sleep(0.01)
        reads = [c.json for c in fake_graph.calls("messages")]
        release.set()
        worker.join(10)

    # then: the customer saw "typing" before the answer, which followed
    assert reads == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message.wamid,
            "typing_indicator": {"type": "text"},
        }
    ]
    assert out.get("error") is None
    assert [c.json.get("type") for c in fake_graph.calls("messages")] == [None, "text"]


def test_a_reply_whose_answer_from_meta_is_lost_is_never_sent_again_automatically(
    inbox: Inbox, fake_openai: FakeOpenAI, fake_graph: FakeGraph, llm_bot: BotConfig
) -> None:
    # given: Meta takes the reply and the connection drops before its answer (the same state a
    # bots worker killed right after its claim leaves); no read receipts, so one call to Meta
    fake_graph.script("messages", FakeGraphReply(accept=True, drop=True))
    message, _result = turn_with_broker_down(inbox, fake_openai, read_receipts=False)
    (reply,) = bot_messages(message.conversation)
    assert (reply.status, reply.send_attempts, reply.wamid) == (Message.Status.SENDING, 1, None)

    # when: the sweeps run past the confirmation window
    later = timezone.now() + timedelta(seconds=settings.WHATSAPP_SEND_CONFIRM_SECONDS + 1)
    marked = delivery.reconcile_unconfirmed(later)
    pending = delivery.due_pending(later, min_age=0)

    # then: shown to people as not confirmed, never sent a second time on its own
    reply.refresh_from_db()
    assert (marked, pending, reply.status) == ([reply.pk], [], Message.Status.UNCONFIRMED)
    assert len(fake_graph.sends()) == 1
