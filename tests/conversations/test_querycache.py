"""Intake's hot queries, compiled once: the same rows and related objects as the ORM's own, new
values on every call, and a loud refusal of a query whose values it cannot place."""

from __future__ import annotations

import pytest
from django.db.models import Q

from conversations.models import Conversation, Customer
from conversations.querycache import CompiledQuery, CompiledUpdate


def _open_of(inbox_id: int, wa_id: str):  # type: ignore[no-untyped-def]
    return Conversation.objects.select_related("customer").filter(inbox_id=inbox_id, customer__wa_id=wa_id).order_by()


@pytest.mark.django_db
def test_it_returns_what_the_orm_returns_with_new_values_each_call(inbox, django_assert_num_queries) -> None:
    # given: two customers with a conversation each
    maria = Customer.objects.create(wa_id="5511911110000", name="Maria")
    joao = Customer.objects.create(wa_id="5511922220000", name="João")
    first = Conversation.objects.create(inbox=inbox, customer=maria)
    second = Conversation.objects.create(inbox=inbox, customer=joao)
    query = CompiledQuery(_open_of, -1, "\0wa")

    # when: called for one, then the other, then someone unknown
    with django_assert_num_queries(3):
        found = [query(inbox.pk, "5511911110000"), query(inbox.pk, "5511922220000"), query(inbox.pk, "55")]
        names = [rows[0].customer.name for rows in found[:2]]  # select_related: no query more

    # then
    assert [[c.pk for c in rows] for rows in found] == [[first.pk], [second.pk], []]
    assert names == ["Maria", "João"]
    assert found[0][0].opened == Conversation.objects.get(pk=first.pk).opened


@pytest.mark.django_db
def test_it_refuses_a_value_that_does_not_reach_the_sql_as_it_is(inbox) -> None:
    # given: a lookup that rewrites its value ("%...%")
    query = CompiledQuery(lambda name: Customer.objects.filter(name__contains=name), "\0name")

    # when / then
    with pytest.raises(ValueError, match="do not reach the SQL"):
        query("Maria")


@pytest.mark.django_db
def test_it_updates_only_the_row_and_fields_named(inbox) -> None:
    # given
    maria = Customer.objects.create(wa_id="5511911110000", name="Maria")
    joao = Customer.objects.create(wa_id="5511922220000", name="João")
    update = CompiledUpdate(Customer, ["name", "username"])

    # when
    updated = update(maria.pk, "Maria Souza", "maria.s")

    # then
    assert updated == 1
    assert list(Customer.objects.order_by("pk").values_list("name", "username", "wa_id")) == [
        ("Maria Souza", "maria.s", "5511911110000"),
        ("João", "", "5511922220000"),
    ]
    assert joao.name == "João"


@pytest.mark.django_db
def test_a_list_value_returns_what_the_orm_returns_whatever_its_length(inbox, django_assert_num_queries) -> None:
    # given: five customers and a query on a list of their ids
    customers = [Customer.objects.create(wa_id=f"55119111100{n:02d}", name=f"C{n}") for n in range(5)]
    ids = [customer.pk for customer in customers]
    query = CompiledQuery(lambda pks: Customer.objects.filter(pk__in=pks).order_by(), [-987654321])

    # when: lists of one, three (padded to four), four, with repeats, and with an unknown id
    with django_assert_num_queries(5):
        found = [
            query([ids[0]]),
            query(ids[1:4]),
            query(ids[:4]),
            query([ids[4], ids[4], ids[0]]),
            query([ids[2], -5]),
        ]
    # an empty list asks nothing
    with django_assert_num_queries(0):
        empty = query([])

    # then
    assert [sorted(c.pk for c in rows) for rows in found] == [
        [ids[0]],
        ids[1:4],
        ids[:4],
        sorted([ids[0], ids[4]]),
        [ids[2]],
    ]
    assert empty == []
    # lengths three and four share one compiled statement; one and two have their own
    assert sorted(key[1:] for key in query._compiled) == [(1,), (2,), (4,)]


@pytest.mark.django_db
def test_a_list_longer_than_any_bucket_runs_through_the_orm(inbox) -> None:
    # given
    maria = Customer.objects.create(wa_id="5511911110000", name="Maria")
    query = CompiledQuery(lambda pks: Customer.objects.filter(pk__in=pks).order_by(), [-987654321])

    # when
    found = query([maria.pk, *range(-1, -400, -1)])

    # then
    assert [c.pk for c in found] == [maria.pk]
    assert query._compiled == {}


@pytest.mark.django_db
def test_values_list_queries_return_their_tuples_or_flat_values(inbox) -> None:
    # given
    maria = Customer.objects.create(wa_id="5511911110000", name="Maria")
    conversation = Conversation.objects.create(inbox=inbox, customer=maria)
    pairs = CompiledQuery(
        lambda pks, wa_id: (
            Conversation.objects.filter(pk__in=pks, customer__wa_id=wa_id)
            .order_by()
            .values_list("pk", "opened", "customer__name")
        ),
        [-987654321],
        "\0wa",
    )
    flat = CompiledQuery(
        lambda pks: Customer.objects.filter(pk__in=pks).order_by().values_list("name", flat=True), [-1]
    )

    # when
    found = pairs([conversation.pk], "5511911110000")
    names = flat([maria.pk])

    # then: the same values the ORM gives, converters applied (an aware datetime)
    assert found == list(Conversation.objects.filter(pk=conversation.pk).values_list("pk", "opened", "customer__name"))
    assert found[0][1].tzinfo is not None
    assert names == ["Maria"]
    assert pairs([conversation.pk], "55") == []


@pytest.mark.django_db
def test_a_grouped_values_list_returns_its_aggregates_in_the_order_it_names_them(inbox) -> None:
    # given: two customers, one with two conversations
    from django.db.models import Count

    maria = Customer.objects.create(wa_id="5511911110000", name="Maria")
    joao = Customer.objects.create(wa_id="5511922220000", name="João")
    Conversation.objects.create(inbox=inbox, customer=maria, status=Conversation.Status.CLOSED)
    Conversation.objects.create(inbox=inbox, customer=maria)
    Conversation.objects.create(inbox=inbox, customer=joao)

    def grouped(pks, *names):  # type: ignore[no-untyped-def]
        return (
            Conversation.objects.filter(customer_id__in=pks)
            .values_list("customer_id")
            .annotate(n=Count("status"), closed=Count("status", filter=Q(status="closed")))
            .values_list(*names)
            .order_by("customer_id")
        )

    natural = CompiledQuery(lambda pks: grouped(pks, "customer_id", "n", "closed"), [-1])
    reordered = CompiledQuery(lambda pks: grouped(pks, "closed", "customer_id", "n"), [-1])

    # when
    found = natural([maria.pk, joao.pk])
    found_reordered = reordered([maria.pk, joao.pk])

    # then: what the ORM gives, column for column
    assert (
        found == list(grouped([maria.pk, joao.pk], "customer_id", "n", "closed")) == [(maria.pk, 2, 1), (joao.pk, 1, 0)]
    )
    assert (
        found_reordered
        == list(grouped([maria.pk, joao.pk], "closed", "customer_id", "n"))
        == [
            (1, maria.pk, 2),
            (0, joao.pk, 1),
        ]
    )


@pytest.mark.django_db
def test_a_datetime_value_reaches_the_sql_as_the_database_takes_it(inbox) -> None:
    # given: conversations active at different times (SQLite takes a datetime as text in UTC)
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    maria = Customer.objects.create(wa_id="5511911110000", name="Maria")
    joao = Customer.objects.create(wa_id="5511922220000", name="João")
    old = Conversation.objects.create(inbox=inbox, customer=maria, last_message=now - dt.timedelta(days=3))
    new = Conversation.objects.create(inbox=inbox, customer=joao, last_message=now - dt.timedelta(minutes=5))
    since = CompiledQuery(
        lambda start: Conversation.objects.filter(last_message__gte=start).order_by("pk").values_list("pk", flat=True),
        dt.datetime(1901, 2, 3, tzinfo=dt.UTC),
    )

    # when / then: what the ORM answers, for several values
    for start in (now - dt.timedelta(days=7), now - dt.timedelta(hours=1), now):
        expected = list(
            Conversation.objects.filter(last_message__gte=start).order_by("pk").values_list("pk", flat=True)
        )
        assert since(start) == expected
    assert since(now - dt.timedelta(days=7)) == [old.pk, new.pk]
    assert since(now - dt.timedelta(hours=1)) == [new.pk]
