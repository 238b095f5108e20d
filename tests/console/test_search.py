"""Searching the console's lists by name, phone or message text: accents folded on PostgreSQL
(full-text search in Portuguese, on the indexes of migration conversations 0005), icontains on
SQLite; the matching message shown, escaped; only what the user may see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from console import search
from conversations.models import Conversation, Customer, Inbox, Membership, Message

Status = Conversation.Status
URL = "/console/"


@pytest.fixture
def people(inbox: Inbox) -> SimpleNamespace:
    other = Inbox.objects.create(name="Filial", phone_number_id="PNID_B", app_secret="b-secret")
    ana = User.objects.create_user("ana", first_name="Ana")
    supervisor = User.objects.create_user("renata", first_name="Renata")
    Membership.objects.create(user=ana, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=supervisor, inbox=inbox, role=Membership.Role.SUPERVISOR)
    return SimpleNamespace(inbox=inbox, other=other, ana=ana, supervisor=supervisor)


@pytest.fixture
def chat(inbox: Inbox) -> Callable[..., Conversation]:
    counter = iter(range(1, 10_000))

    def make(
        name: str, *texts: str, status: str = Status.QUEUED, inbox: Inbox = inbox, wa_id: str | None = None
    ) -> Conversation:
        n = next(counter)
        wa_id = wa_id or f"55219990{n:05d}"
        customer = Customer.objects.create(wa_id=wa_id, phone=f"+{wa_id}", name=name)
        now = timezone.now() - timedelta(minutes=n)
        conversation = Conversation.objects.create(
            inbox=inbox, customer=customer, status=status, last_message=now, last_inbound=now
        )
        for i, text in enumerate(texts or ("Oi",)):
            Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.IN,
                sender_kind=Message.SenderKind.CUSTOMER,
                type="text",
                text=text,
                wamid=f"wamid.S{n}-{i}",
                wa_timestamp=now - timedelta(seconds=10 - i),
            )
        return conversation

    return make


def found(client: Any, q: str, view: str = "queue") -> list[int]:
    response = client.get(URL, {"view": view, "q": q})
    assert response.status_code == 200
    return [conversation.pk for conversation in response.context["conversations"]]


@pytest.fixture(params=["rare", "common", "common, small window", "more than expected"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every way PostgreSQL searches: matches collected from the GIN indexes (a rare word); the
    list walked with each conversation's messages checked (a common word; several common
    words walk a long list's newest conversations first, and search it all when that window
    does not fill the page); and a collection that finds more than the planner expected and
    turns to walking."""
    if request.param.startswith("common"):
        monkeypatch.setattr(search, "COMMON_MATCHES", -1)
    if request.param == "common, small window":
        monkeypatch.setattr(search, "WALK_WINDOW", 1)
    if request.param == "more than expected":
        monkeypatch.setattr(search, "COMMON_MATCHES", 0)
        monkeypatch.setattr(search, "_estimated_rows", lambda qs: 0)
    return request.param


@pytest.mark.django_db
def test_it_finds_by_name_phone_and_message_text(client: Any, people: Any, chat: Any, strategy: str) -> None:
    # given
    maria = chat("Maria Pereira", "Bom dia")
    phone = chat("Carlos", "Oi", wa_id="5531987650003")
    text = chat("Pedro", "Meu pedido atrasou", "Qual o rastreio?")
    chat("Outra Pessoa", "Nada a ver")
    client.force_login(people.ana)

    # when / then
    assert found(client, "maria") == [maria.pk]
    assert found(client, "98765") == [phone.pk]
    assert found(client, "+55 31 98765-0003") == [phone.pk]
    assert found(client, "rastreio") == [text.pk]
    assert found(client, "pedido atrasou") == [text.pk]  # every word, in one message
    assert found(client, "pedido rastreio") == []
    assert found(client, "inexistente") == []


@pytest.mark.django_db
@pytest.mark.postgres
def test_it_folds_accents_on_postgres(client: Any, people: Any, chat: Any, strategy: str) -> None:
    # given
    joao = chat("João Araújo", "Oi")
    sugar = chat("Fernanda", "Vocês têm açúcar mascavo?")
    client.force_login(people.ana)

    # when / then: without accents, with them, and Portuguese stems
    assert found(client, "Joao") == [joao.pk]
    assert found(client, "araujo") == [joao.pk]
    assert found(client, "acucar") == [sugar.pk]
    assert found(client, "AÇÚCAR") == [sugar.pk]
    assert found(client, "voces tem acucar") == [sugar.pk]


@pytest.mark.django_db
@pytest.mark.postgres
def test_it_shows_which_message_matched_escaped_and_marked(client: Any, people: Any, chat: Any) -> None:
    # given: the match is not the last message, and holds markup
    conversation = chat("Fernanda", "<b>açúcar</b> <script>x()</script> chegou?", "Obrigada")
    client.force_login(people.ana)

    # when
    response = client.get(URL, {"q": "acucar"})

    # then
    body = response.content.decode()
    assert f'id="conversation-row-{conversation.pk}"' in body
    assert "&lt;b&gt;<mark>açúcar</mark>&lt;/b&gt; &lt;script&gt;x()&lt;/script&gt; chegou?" in body
    assert "<script>x()" not in body
    assert "<b>açúcar" not in body


@pytest.mark.django_db
def test_it_shows_the_matching_message_on_every_database(client: Any, people: Any, chat: Any) -> None:
    # given
    conversation = chat("Fernanda", "Quero trocar o <tamanho> da camiseta", "Obrigada")
    client.force_login(people.ana)

    # when
    response = client.get(URL, {"q": "camiseta"})

    # then
    [row] = response.context["conversations"]
    assert row.pk == conversation.pk
    assert "camiseta" in row.snippet
    assert "&lt;tamanho&gt;" in row.snippet


@pytest.mark.django_db
def test_it_searches_only_what_the_user_may_see(client: Any, people: Any, chat: Any, strategy: str) -> None:
    # given: a match in another inbox, and one assigned to someone else
    other_user = User.objects.create_user("bruno")
    Membership.objects.create(user=other_user, inbox=people.inbox)
    chat("Beatriz Filial", "pedido", inbox=people.other)
    theirs = chat("Beatriz Bruno", "pedido", status=Status.ASSIGNED)
    theirs.assignee = other_user
    theirs.save()
    client.force_login(people.ana)

    # when
    results = {view: found(client, "beatriz", view) for view in ("queue", "mine", "bot", "all")}

    # then
    assert results == {"queue": [], "mine": [], "bot": [], "all": []}


@pytest.mark.django_db
def test_it_finds_several_words_across_the_whole_history(client: Any, people: Any, chat: Any, strategy: str) -> None:
    # given: matches among the newest conversations and further back, closed ones included
    newest = chat("Beatriz", "troca de tela", "obrigada")
    chat("Carla", "tela quebrada")
    older = chat("Daniela", "preciso de troca da tela", status=Status.CLOSED)
    chat("Elisa", "troca de bateria", status=Status.CLOSED)
    chat("Gabriela", "a tela", "troca?", status=Status.CLOSED)  # the words in two messages
    oldest = chat("Fabiana", "a tela falhou, quero troca", status=Status.CLOSED)
    chat("Helena", "a tela e a troca")
    unstamped = Conversation.objects.filter(customer__name="Helena")
    unstamped.update(last_message=None)  # newest first puts it before everyone
    client.force_login(people.supervisor)

    # when / then: newest activity first, every word in one of the conversation's messages
    helena = unstamped.get().pk
    everywhere = found(client, "troca tela", "all")
    assert [pk for pk in everywhere if pk != helena] == [newest.pk, older.pk, oldest.pk]
    assert helena in everywhere  # first on PostgreSQL (NULLs first, newest first), last on SQLite
    assert sorted(found(client, "tela troca", "queue")) == sorted([newest.pk, helena])


@pytest.mark.django_db
def test_it_searches_within_the_tab_for_a_supervisor(client: Any, people: Any, chat: Any, strategy: str) -> None:
    # given
    queued = chat("Beatriz Um", "pedido")
    closed = chat("Beatriz Dois", "pedido", status=Status.CLOSED)
    client.force_login(people.supervisor)

    # when / then
    assert found(client, "beatriz", "queue") == [queued.pk]
    assert found(client, "beatriz", "all") == [queued.pk, closed.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("q", ["a & b | !c", "foo:*", "'; DROP TABLE x; --", "(((", "100%", "_", "\x00", "ç" * 300])
def test_it_reads_any_input_as_plain_words(client: Any, people: Any, chat: Any, q: str) -> None:
    # given
    chat("Maria", "Oi")
    client.force_login(people.ana)

    # when
    response = client.get(URL, {"q": q})

    # then: no syntax error, no wildcard
    assert response.status_code == 200
    assert response.context["conversations"] == []


@pytest.mark.django_db
@pytest.mark.postgres
def test_it_queries_the_expressions_the_indexes_were_built_on(people: Any) -> None:
    # given: the planner would rather scan tiny tables, so forbid it
    messages = Message.objects.alias(doc=search.MessageDocument()).filter(
        doc=search._tsquery(["acucar"], "portuguese_unaccent")
    )
    names = Customer.objects.alias(doc=search.NameDocument()).filter(doc=search._tsquery(["joao"], "simple_unaccent"))
    phones = Customer.objects.filter(phone__contains="98765")

    # when
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plans = [qs.explain() for qs in (messages, names, phones)]

    # then
    assert "conv_message_search_doc_idx" in plans[0]
    assert "conv_customer_name_search_idx" in plans[1]
    assert "conv_customer_phone_trgm_idx" in plans[2]
