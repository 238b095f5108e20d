"""Processing stored events: the row is the queue; every outcome recorded on its own; one
customer's events in WhatsApp order; wake-ups that never pile up in the broker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from conversations import dispatch, processing, signals, tasks
from conversations.models import Alert, Message, WebhookEvent
from conversations.whatsapp import store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, broker_down, envelope, text_payload


def stored(body: dict) -> int:
    """Store ``body`` as the webhook view does, signed with the test inbox's app secret."""
    raw = json.dumps(body).encode()
    return store.store_event(raw, signature=sign(raw, TEST_SECRET), signature_valid=True, remote_addr=None)


def template_rejected(name: str) -> dict:
    """A template status update: its alert is written outside any message's savepoint."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "TEST_WABA",
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {
                            "event": "REJECTED",
                            "message_template_name": name,
                            "message_template_language": "pt_BR",
                            "reason": "INCORRECT_CATEGORY",
                        },
                    }
                ],
            }
        ],
    }


def refuse_alert_inserts() -> None:
    """The database refuses every alert row: a real statement failing outside the savepoint
    of any message (intake writes this alert straight in the event's transaction)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                """
                CREATE FUNCTION test_refuse_alert() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION 'alerts table on fire'; END $$ LANGUAGE plpgsql;
                CREATE TRIGGER test_refuse_alert BEFORE INSERT ON conversations_alert
                  FOR EACH ROW EXECUTE FUNCTION test_refuse_alert();
                """
            )
        else:
            cursor.execute(
                "CREATE TRIGGER test_refuse_alert BEFORE INSERT ON conversations_alert"
                " BEGIN SELECT RAISE(ABORT, 'alerts table on fire'); END"
            )


def refuse_message_inserts(wamid: str) -> None:
    """The database refuses one message row (inside its item's savepoint)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                CREATE FUNCTION test_refuse_message() RETURNS trigger AS $$
                BEGIN
                  IF NEW.wamid = '{wamid}' THEN RAISE EXCEPTION 'disk on fire'; END IF;
                  RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE TRIGGER test_refuse_message BEFORE INSERT ON conversations_message
                  FOR EACH ROW EXECUTE FUNCTION test_refuse_message();
                """
            )
        else:
            cursor.execute(
                "CREATE TRIGGER test_refuse_message BEFORE INSERT ON conversations_message"
                f" WHEN NEW.wamid = '{wamid}' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )


def drop_message_refusal() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "DROP TRIGGER test_refuse_message ON conversations_message; DROP FUNCTION test_refuse_message();"
            )
        else:
            cursor.execute("DROP TRIGGER test_refuse_message")


@pytest.fixture(autouse=True)
def _clean_claims() -> None:
    cache.clear()


@pytest.mark.django_db
def test_it_applies_every_due_event_and_records_each_outcome(inbox, english) -> None:
    # given
    first = stored(text_payload("wamid.P1"))
    second = stored(text_payload("wamid.P2", wa_id="5521999990000"))

    # when
    applied, more = processing.process_due()

    # then
    assert (applied, more) == (2, False)
    events = list(WebhookEvent.objects.filter(pk__in=[first, second]).order_by("pk"))
    assert [(e.state, e.attempts, e.notes) for e in events] == [
        ("done", 1, "1 new, 0 duplicates, 0 statuses"),
        ("done", 1, "1 new, 0 duplicates, 0 statuses"),
    ]
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.P1", "wamid.P2"]


@pytest.mark.django_db
def test_it_writes_the_summary_in_the_workers_language(inbox, settings) -> None:
    # given: an admin browsing in English does not change the language of stored notes
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    stored(text_payload("wamid.LANG"))

    # when
    with translation.override("pt-br"):
        processing.process_due()

    # then
    assert WebhookEvent.objects.get().notes == "1 new, 0 duplicates, 0 statuses"


@pytest.mark.django_db
def test_it_records_a_poisoned_event_on_its_own_and_finishes_its_batch(inbox) -> None:
    # given: three events in one batch; the database refuses the middle one's only message.
    # Its customer has an open conversation, where a one-item body's message is inserted with
    # no savepoint (intake saves the queries): the error lands in the batch's transaction,
    # which it used to abort whole
    stored(text_payload("wamid.EARLIER", wa_id="5531988887777"))
    processing.process_batch()
    refuse_message_inserts("wamid.POISON")
    before = stored(text_payload("wamid.BEFORE"))
    poisoned = stored(text_payload("wamid.POISON", wa_id="5531988887777"))
    after = stored(text_payload("wamid.AFTER", wa_id="5521999990000"))

    # when: one batch
    applied = processing.process_batch()

    # then: the poisoned event is failed with its error, its batch-mates are done
    assert applied == 3
    event = WebhookEvent.objects.get(pk=poisoned)
    assert (event.state, event.attempts) == ("failed", 1)
    # (SQLite reports its trigger's abort as a constraint failure, read as a wamid race.)
    assert "disk on fire" in event.last_error or connection.vendor == "sqlite"
    assert event.last_error
    assert event.next_attempt > timezone.now()
    states = dict(WebhookEvent.objects.filter(pk__in=[before, after]).values_list("pk", "state"))
    assert states == {before: "done", after: "done"}
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.AFTER", "wamid.BEFORE", "wamid.EARLIER"]


@pytest.mark.django_db(transaction=True)
def test_it_announces_the_batch_mates_of_a_poisoned_event_once(inbox) -> None:
    # given: a batch applied optimistically in one savepoint fails on its middle event, is
    # rolled back and applied again event by event; what the first pass announced must not
    # reach anyone, and what the second announced must, once
    stored(text_payload("wamid.EARLIER", wa_id="5531988887777"))
    processing.process_batch()
    heard: list[str] = []

    def receiver(sender: object, *, message_id: int, **kwargs: object) -> None:
        heard.append(Message.objects.get(pk=message_id).wamid)

    signals.message_received.connect(receiver, weak=False, dispatch_uid="test-batch-mates")
    refuse_message_inserts("wamid.POISON")
    try:
        stored(text_payload("wamid.BEFORE"))
        poisoned = stored(text_payload("wamid.POISON", wa_id="5531988887777"))
        stored(text_payload("wamid.AFTER", wa_id="5521999990000"))

        # when
        applied = processing.process_batch()
    finally:
        signals.message_received.disconnect(dispatch_uid="test-batch-mates")
        drop_message_refusal()

    # then
    assert applied == 3
    assert heard == ["wamid.BEFORE", "wamid.AFTER"]
    assert WebhookEvent.objects.get(pk=poisoned).state == "failed"
    assert Message.objects.filter(wamid__in=["wamid.BEFORE", "wamid.AFTER"]).count() == 2


@pytest.mark.django_db
def test_it_applies_a_batch_of_known_customers_in_four_queries_a_message(
    inbox, django_assert_num_queries, english
) -> None:
    # given: five customers with an open conversation, each with a new message waiting
    customers = [f"55119888800{i:02d}" for i in range(5)]
    for index, wa_id in enumerate(customers):
        stored(text_payload(f"wamid.FIRST{index}", wa_id=wa_id, timestamp=1_750_000_000))
    processing.process_batch()
    for index, wa_id in enumerate(customers):
        stored(text_payload(f"wamid.NEXT{index}", wa_id=wa_id, timestamp=1_750_000_060))

    # when: per batch the claim, the ordering check, the inbox, one savepoint and its release,
    # one UPDATE for the five outcomes; per message its open conversation (locked), "known or
    # awaited?", the insert and the conversation's times (inside the test's transaction the
    # batch's own is a savepoint too: two more; on PostgreSQL the batch's SET LOCAL
    # synchronous_commit: one more)
    async_commit = 1 if connection.vendor == "postgresql" else 0
    with django_assert_num_queries(2 + 6 + async_commit + 4 * 5):
        applied = processing.process_batch()

    # then
    assert applied == 5
    assert (
        list(WebhookEvent.objects.order_by("pk").values_list("state", "attempts", "notes"))[5:]
        == [("done", 1, "1 new, 0 duplicates, 0 statuses")] * 5
    )
    assert Message.objects.count() == 10


@pytest.mark.django_db
def test_it_raises_an_admin_alert_when_an_event_runs_out_of_attempts(inbox, settings, english) -> None:
    # given: an event on its last attempt whose message the database keeps refusing
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    refuse_message_inserts("wamid.BOOM")
    event_id = stored(text_payload("wamid.BOOM"))
    WebhookEvent.objects.filter(pk=event_id).update(state="failed", attempts=2, next_attempt=timezone.now())

    # when
    processing.process_batch()

    # then: failed for good, and an admin is told
    event = WebhookEvent.objects.get(pk=event_id)
    assert (event.state, event.attempts) == ("failed", 3)
    # (SQLite reports its trigger's abort as a constraint failure, read as a wamid race.)
    assert "disk on fire" in event.last_error or connection.vendor == "sqlite"
    alert = Alert.objects.get(kind=Alert.Kind.WEBHOOK)
    assert alert.title == f"Webhook event #{event_id} failed 3 times and will not be retried"
    assert alert.details == event.last_error
    assert alert.resolved is None
    assert not WebhookEvent.objects.due(timezone.now() + timedelta(days=1)).exists()


@pytest.mark.django_db
def test_it_applies_a_crash_suspect_alone_and_gives_up_on_one_that_keeps_killing_workers(
    inbox, settings, english
) -> None:
    # given: three events; the first was claimed WEBHOOK_CRASH_LIMIT times by workers that died
    # before an outcome, the second once (its batch-mate killed them), the third never
    settings.WEBHOOK_CRASH_LIMIT = 3
    killer = stored(text_payload("wamid.KILLER"))
    bystander = stored(text_payload("wamid.BYSTANDER", wa_id="5521999990000"))
    fresh = stored(text_payload("wamid.FRESH", wa_id="5531988887777"))
    cache.set_many({f"webhooks:claims:{killer}": 3, f"webhooks:claims:{bystander}": 1})

    # when: one batch
    assert processing.process_batch() == 2

    # then: the killer is given up without being applied, the bystander applied alone
    killed = WebhookEvent.objects.get(pk=killer)
    assert (killed.state, killed.attempts) == ("failed", django_settings.WEBHOOK_MAX_ATTEMPTS)
    assert killed.last_error == "a worker stopped while applying this event (3 times): replay it by hand"
    assert Alert.objects.get(kind=Alert.Kind.WEBHOOK).title.startswith(f"Webhook event #{killer} failed")
    assert list(Message.objects.values_list("wamid", flat=True)) == ["wamid.BYSTANDER"]
    assert WebhookEvent.objects.get(pk=fresh).state == "pending"

    # when: the next batch
    assert processing.process_batch() == 1

    # then
    assert WebhookEvent.objects.get(pk=fresh).state == "done"
    assert cache.get_many([f"webhooks:claims:{pk}" for pk in (killer, bystander, fresh)]) == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_bounds_an_event_that_kills_the_transaction_every_time(inbox, settings) -> None:
    # given: an event whose message makes PostgreSQL drop the worker's connection (what a
    # crash of the worker looks like from the database: the batch rolls back, nothing is
    # recorded), before two good events
    settings.WEBHOOK_CRASH_LIMIT = 3
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_kill_backend() RETURNS trigger AS $$
            BEGIN
              IF NEW.wamid = 'wamid.PILL' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_kill_backend BEFORE INSERT ON conversations_message
              FOR EACH ROW EXECUTE FUNCTION test_kill_backend();
            """
        )
    try:
        pill = stored(text_payload("wamid.PILL"))
        good = [stored(text_payload(f"wamid.GOOD{i}", wa_id=f"552199999000{i}")) for i in range(2)]

        # when: workers keep claiming (each death costs the worker its connection)
        deaths = 0
        for _ in range(10):
            try:
                if not processing.process_batch():
                    break
            except DatabaseError:
                deaths += 1
                connection.close()

        # then: three deaths, then the pill is given up and the good events are applied once
        assert deaths == 3
        event = WebhookEvent.objects.get(pk=pill)
        assert (event.state, event.attempts) == ("failed", django_settings.WEBHOOK_MAX_ATTEMPTS)
        assert list(WebhookEvent.objects.filter(pk__in=good).values_list("state", "attempts")) == [("done", 1)] * 2
        assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.GOOD0", "wamid.GOOD1"]
        assert Alert.objects.filter(kind=Alert.Kind.WEBHOOK).count() == 1
    finally:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_kill_backend ON conversations_message; DROP FUNCTION test_kill_backend();"
            )


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_applies_one_customers_messages_in_whatsapp_order_with_two_workers(inbox, settings) -> None:
    # given: 24 messages of two customers, interleaved, and inserts slow enough that two
    # workers claiming small batches overlap
    settings.WEBHOOK_BATCH_SIZE = 3
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$
            BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_slow_insert BEFORE INSERT ON conversations_message
              FOR EACH ROW EXECUTE FUNCTION test_slow_insert();
            """
        )
    customers = ["5511987654321", "5521999990000"]
    sent = {wa_id: [] for wa_id in customers}
    for i in range(24):
        wa_id = customers[i % 2]
        wamid = f"wamid.ORDER{i:02d}"
        stored(text_payload(wamid, f"mensagem {i}", wa_id=wa_id, timestamp=1_750_000_000 + i))
        sent[wa_id].append(wamid)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and WebhookEvent.objects.filter(state="pending").exists():
                if not processing.process_batch():
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # when
    try:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_slow_insert ON conversations_message; DROP FUNCTION test_slow_insert();")

    # then: each customer's messages were created in the order WhatsApp sent them
    assert errors == []
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"done"}
    for wa_id in customers:
        created = Message.objects.filter(conversation__customer__wa_id=wa_id).order_by("pk")
        assert list(created.values_list("wamid", flat=True)) == sent[wa_id]


@pytest.mark.django_db
def test_it_routes_events_by_customer_when_storing_them() -> None:
    # given
    echo = envelope({"message_echoes": [{"from": "5511900000000", "to": "5511987654321", "id": "wamid.E"}]})
    by_user_id = envelope({"messages": [{"from_user_id": "BR.123", "id": "wamid.U", "type": "text"}]})

    # when
    routes = [
        WebhookEvent.objects.get(pk=stored(body)).route
        for body in (text_payload("wamid.R"), echo, by_user_id, envelope({"statuses": [{"id": "w", "status": "read"}]}))
    ]
    unsigned = store.store_event(
        json.dumps(text_payload("wamid.NOPE")).encode(), signature="x", signature_valid=False, remote_addr=None
    )

    # then
    assert routes == ["TEST_PNID:5511987654321", "TEST_PNID:5511987654321", "TEST_PNID:BR.123", ""]
    assert WebhookEvent.objects.get(pk=unsigned).route == ""


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b'{"entry": 1}', b'{"entry": [{"changes": [{"value": {"messages": [7]}}]}]}', b"[" * 100_000],
)
def test_it_gives_an_unreadable_body_no_route_and_never_raises(body: bytes) -> None:
    assert store.route_of(body) == ""


@contextmanager
def real_broker() -> Iterator[redis.Redis]:
    """Tasks go to the test Redis (no worker consumes them there)."""
    from config.celery import app

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(dispatch.WEBHOOKS_QUEUE)
    app.conf.task_always_eager = False
    try:
        yield client
    finally:
        app.conf.task_always_eager = True
        client.delete(dispatch.WEBHOOKS_QUEUE)
        client.close()


@pytest.mark.django_db
@pytest.mark.redis
def test_it_keeps_a_few_wakeups_in_the_broker_however_long_the_backlog(inbox, settings) -> None:
    # given: 120 stored events and no worker running
    for i in range(120):
        stored(text_payload(f"wamid.BACKLOG{i}", wa_id=f"55119{i:08d}"))

    with real_broker() as client:
        # when: beat's sweep runs 20 times, then 20 more after any hand-out deadline passed
        # (the old dispatcher handed "queued" events out again after 10 minutes)
        queued = [tasks.dispatch_webhook_events() for _ in range(20)]
        WebhookEvent.objects.update(next_attempt=timezone.now() - timedelta(seconds=1))
        queued += [tasks.dispatch_webhook_events() for _ in range(20)]

        # then: the broker holds WEBHOOK_WAKEUPS wake-ups, not one per event, chunk or sweep
        assert queued == [settings.WEBHOOK_WAKEUPS] + [0] * 39
        assert client.llen(dispatch.WEBHOOKS_QUEUE) == settings.WEBHOOK_WAKEUPS
        assert dispatch.queued_wakeups() == settings.WEBHOOK_WAKEUPS
    assert WebhookEvent.objects.filter(state="pending").count() == 120


@pytest.mark.django_db
def test_it_loses_nothing_when_the_broker_is_down_at_dispatch(inbox) -> None:
    # given
    event_ids = [stored(text_payload(f"wamid.DOWN{i}", wa_id=f"55119{i:08d}")) for i in range(3)]

    # when: the sweep runs while the broker is unreachable
    with broker_down():
        assert tasks.dispatch_webhook_events() == 0

    # then: nothing is marked, nothing lost
    assert list(WebhookEvent.objects.filter(pk__in=event_ids).values_list("state", "attempts")) == [("pending", 0)] * 3

    # when: the broker is back
    tasks.dispatch_webhook_events()

    # then
    assert set(WebhookEvent.objects.filter(pk__in=event_ids).values_list("state", flat=True)) == {"done"}
    assert Message.objects.count() == 3


@pytest.mark.django_db
def test_it_sweeps_nothing_when_nothing_is_due_and_records_its_heartbeat(inbox) -> None:
    # given
    cache.delete(dispatch.HEARTBEAT_KEY)

    # when
    with broker_down():
        queued = tasks.dispatch_webhook_events()

    # then
    assert queued == 0
    assert dispatch.last_dispatch_age() < 5


@pytest.mark.django_db
def test_it_replays_a_finished_event_without_applying_it_twice(inbox) -> None:
    # given
    event_id = stored(text_payload("wamid.REPLAY"))
    processing.process_due()

    # when
    event = processing.process_event(event_id, force=True)

    # then
    assert (event.state, event.attempts) == ("done", 2)
    assert Message.objects.get().wamid == "wamid.REPLAY"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_skips_an_event_that_a_worker_is_applying(inbox) -> None:
    # given: a worker (another connection) holds the event's row
    event_id = stored(text_payload("wamid.HELD"))
    holding, release = threading.Event(), threading.Event()

    def worker() -> None:
        try:
            with transaction.atomic():
                WebhookEvent.objects.select_for_update().get(pk=event_id)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    holding.wait(10)
    try:
        # when: a replay and a batch run meanwhile
        replayed = processing.process_event(event_id, force=True)
        applied = processing.process_batch()
    finally:
        release.set()
        thread.join()

    # then: neither applied it
    assert (replayed, applied) == (None, 0)
    assert Message.objects.count() == 0


def run_listener(seconds: float) -> threading.Thread:
    def listen() -> None:
        try:
            call_command("listen_webhooks", seconds=seconds)
        finally:
            connection.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    return thread


def wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until it holds; return the seconds it took (fails past ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_processes_a_stored_event_within_milliseconds_through_the_listener(inbox) -> None:
    # given: the listener running, no beat
    listener = run_listener(seconds=6)
    wait_until(lambda: dispatch.last_dispatch_age() is not None, timeout=5)

    # when: the webhook stores an event (its INSERT notifies)
    event_id = stored(text_payload("wamid.FAST"))
    took = wait_until(lambda: WebhookEvent.objects.get(pk=event_id).state == "done", timeout=3)

    # then: no beat runs here, and it took less than beat's one-second tick (applying the
    # event included, on a machine shared with the rest of the suite)
    assert took < 0.8

    # when: the database drops every connection but this test's (as in a restart), and an
    # event arrives meanwhile
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    second = stored(text_payload("wamid.AFTER_RECONNECT"))

    # then: it listens again and the event is processed
    wait_until(lambda: WebhookEvent.objects.get(pk=second).state == "done", timeout=4)
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.AFTER_RECONNECT", "wamid.FAST"]
    listener.join(10)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_the_listener_applies_what_is_due_itself_with_no_worker_or_broker(inbox) -> None:
    # given: the listener running, no worker, and a broker nobody can reach
    tasks.process_webhooks  # noqa: B018 (registered before broker_down closes the app)
    with broker_down():
        listener = run_listener(seconds=4)
        wait_until(lambda: dispatch.last_dispatch_age() is not None, timeout=3)

        # when: two customers write
        first = stored(text_payload("wamid.LISTENER1"))
        second = stored(text_payload("wamid.LISTENER2", wa_id="5521999990000"))

        # then: both applied within a moment, by the listener alone
        wait_until(lambda: WebhookEvent.objects.filter(pk__in=[first, second], state="done").count() == 2, timeout=2)
        listener.join(10)
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.LISTENER1", "wamid.LISTENER2"]


@contextmanager
def listening() -> Iterator[psycopg.Connection]:
    """A connection of its own LISTENing on the channel stored events notify, as listen_webhooks."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {store.NOTIFY_CHANNEL}")
        yield listener


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_notifies_only_for_validly_signed_events() -> None:
    # given: a connection listening like listen_webhooks
    with listening() as listener:
        # when
        store.store_event(b"{}", signature="sha256=bad", signature_valid=False, remote_addr=None)
        rejected = list(listener.notifies(timeout=0.3))
        store.store_event(b"{}", signature="sha256=good", signature_valid=True, remote_addr=None)
        accepted = list(listener.notifies(timeout=2, stop_after=1))

    # then
    assert rejected == []
    assert [n.channel for n in accepted] == [store.NOTIFY_CHANNEL]


def notifications_of(stores: Callable[[], None]) -> int:
    """How many NOTIFYs of stored events ``stores()`` sent, counted by a listening connection."""
    with listening() as listener:
        stores()
        return len(list(listener.notifies(timeout=0.5)))


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_web_process_notifies_at_most_once_per_gap(settings) -> None:
    def three() -> None:
        for i in range(3):
            store.store_event(b"{}", signature=f"sha256={i}", signature_valid=True, remote_addr=None)

    # given: a gap much longer than three INSERTs take, shorter than the half second that
    # notifications_of listens after them
    settings.WEBHOOK_NOTIFY_GAP_MS = 300

    # when / then: three events stored back to back wake the listener once
    assert notifications_of(three) == 1

    # when / then: after the gap, the next one notifies again
    assert notifications_of(three) == 1

    # when / then: with no gap, each event notifies
    settings.WEBHOOK_NOTIFY_GAP_MS = 0
    assert notifications_of(three) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_the_listener_applies_an_event_stored_without_a_notify_behind_one(inbox, settings) -> None:
    # given: a gap long enough that the second event surely stores without a NOTIFY of its own;
    # the listener running, no beat, no worker
    settings.WEBHOOK_NOTIFY_GAP_MS = 3_000
    listener = run_listener(seconds=6)
    wait_until(lambda: dispatch.last_dispatch_age() is not None, timeout=5)

    def two() -> None:
        first = stored(text_payload("wamid.NOTIFIED"))
        started = time.monotonic()
        wait_until(lambda: WebhookEvent.objects.get(pk=first).state == "done", timeout=2)
        # when: the second arrives after the first was applied, within the gap
        second = stored(text_payload("wamid.BEHIND_IT", wa_id="5521999990000"))
        assert time.monotonic() - started < 2.5
        # then: the listener looked again and applied it, well before beat's sweep would have
        wait_until(lambda: WebhookEvent.objects.get(pk=second).state == "done", timeout=0.8)

    # then: one NOTIFY in all
    assert notifications_of(two) == 1
    listener.join(10)
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.BEHIND_IT", "wamid.NOTIFIED"]


@pytest.mark.django_db
def test_it_leaves_processing_to_the_workers_in_production_mode(inbox, post_webhook, settings) -> None:
    # given: a real broker setup (not the embedded mode's inline tasks)
    from config.celery import app

    app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        # when
        response = post_webhook(text_payload("wamid.LATER2"))
    finally:
        app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER = True

    # then: stored and answered; the request itself published nothing
    assert response.status_code == 200
    assert WebhookEvent.objects.get().state == "pending"
    assert Message.objects.count() == 0

    # when: a wake-up runs (here inline)
    assert tasks.dispatch_webhook_events() == 1

    # then
    assert WebhookEvent.objects.get().state == "done"
    assert Message.objects.get().wamid == "wamid.LATER2"


@pytest.mark.django_db
def test_it_keeps_a_failed_event_with_its_error_and_retries_it_when_due(inbox) -> None:
    # given: the database refuses one message of a two-message body
    refuse_message_inserts("wamid.BOOM")
    body = text_payload("wamid.FINE")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append({**value["messages"][0], "id": "wamid.BOOM"})
    event_id = stored(body)

    # when
    processing.process_due()

    # then: the good message is stored, the event keeps the error and a retry time
    event = WebhookEvent.objects.get(pk=event_id)
    assert (event.state, event.attempts) == ("failed", 1)
    assert "disk on fire" in event.last_error or connection.vendor == "sqlite"
    assert event.next_attempt > timezone.now()
    assert list(Message.objects.values_list("wamid", flat=True)) == ["wamid.FINE"]

    # when: the database accepts it again, but the retry is not due yet
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_refuse_message"
            + (" ON conversations_message" if connection.vendor == "postgresql" else "")
        )
    tasks.dispatch_webhook_events()

    # then
    assert WebhookEvent.objects.get(pk=event_id).state == "failed"

    # when: the retry comes due
    WebhookEvent.objects.filter(pk=event_id).update(next_attempt=timezone.now() - timedelta(seconds=1))
    tasks.dispatch_webhook_events()

    # then
    event.refresh_from_db()
    assert (event.state, event.attempts) == ("done", 2)
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.BOOM", "wamid.FINE"]


def listening_for_a_burst() -> threading.Thread:
    """The listener running for 3 s, once it has written its first heartbeat."""
    listener = run_listener(seconds=3)
    wait_until(lambda: dispatch.last_dispatch_age() is not None and dispatch.last_dispatch_age() < 1, timeout=5)
    return listener


def burst(client: redis.Redis, prefix: str, count: int = 50) -> None:
    """``count`` events stored back to back, each from its own customer; returns once the
    broker has the listener's wake-ups (and a moment more for any late ones)."""
    for i in range(count):
        stored(text_payload(f"{prefix}{i}", wa_id=f"55119{i:08d}"))
    wait_until(lambda: client.llen(dispatch.WEBHOOKS_QUEUE) > 0, timeout=3)
    time.sleep(0.3)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.redis
def test_it_wakes_the_workers_without_a_task_per_message_in_a_burst(inbox, settings) -> None:
    # given: the listener as a pure dispatcher, against the real broker, no worker consuming
    settings.WEBHOOK_LISTENER_APPLIES = False
    with real_broker() as client:
        listener = listening_for_a_burst()
        assert client.llen(dispatch.WEBHOOKS_QUEUE) == 0

        # when: a burst of 50 events
        burst(client, "wamid.BURST")

        # then: a few wake-ups, not 50 tasks
        assert client.llen(dispatch.WEBHOOKS_QUEUE) == settings.WEBHOOK_WAKEUPS
        listener.join(10)
    assert WebhookEvent.objects.filter(state="pending").count() == 50


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.redis
def test_behind_a_burst_the_listener_applies_a_batch_and_wakes_the_workers_for_the_rest(inbox, settings) -> None:
    # given: the listener applying batches of 10, against the real broker, no worker consuming
    settings.WEBHOOK_BATCH_SIZE = 10
    with real_broker() as client:
        listener = listening_for_a_burst()

        # when: a burst of 50 events
        burst(client, "wamid.BEHIND")

        # then: a full batch applied here woke the workers (a few wake-ups, not one per
        # message), and nothing was lost or applied twice
        assert client.llen(dispatch.WEBHOOKS_QUEUE) == settings.WEBHOOK_WAKEUPS
        listener.join(10)
    done = WebhookEvent.objects.filter(state="done").count()
    assert done >= 10 and done + WebhookEvent.objects.filter(state="pending").count() == 50
    assert Message.objects.count() == done


@pytest.mark.django_db
def test_it_hands_over_after_its_time_budget(inbox, settings) -> None:
    # given: three due events, one per batch, and no time budget left after the first batch
    settings.WEBHOOK_BATCH_SIZE = 1
    for i in range(3):
        stored(text_payload(f"wamid.BUDGET{i}", wa_id=f"55119{i:08d}"))

    # when
    applied, more = processing.process_due(budget=0)

    # then: one batch, and the caller is told to queue the next wake-up
    assert (applied, more) == (1, True)
    assert WebhookEvent.objects.filter(state="pending").count() == 2


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_commits_without_waiting_for_the_disk(inbox, settings) -> None:
    # given: a due event
    stored(text_payload("wamid.ASYNC1"))
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        before = cursor.fetchone()[0]

    # when: a batch applies it (SET LOCAL: the setting lasts until the transaction ends)
    with transaction.atomic():
        processing.process_batch()
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            inside = cursor.fetchone()[0]

    # then
    assert (before, inside) == ("on", "off")
    assert Message.objects.filter(wamid="wamid.ASYNC1").exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_batch_commit_waits_for_the_disk_when_configured(inbox, settings) -> None:
    settings.WEBHOOK_PROCESSING_ASYNC_COMMIT = False
    stored(text_payload("wamid.ASYNC2"))

    with transaction.atomic():
        processing.process_batch()
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            inside = cursor.fetchone()[0]

    assert inside == "on"
