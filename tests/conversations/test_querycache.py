"""Intake's hot queries, compiled once: the same rows and related objects as the ORM's own, new
values on every call, and a loud refusal of a query whose values it cannot place."""

from __future__ import annotations

import pytest

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
