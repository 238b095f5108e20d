"""The "try the bot" page (/console/bots/try/): admins and supervisors only, each supervisor on
their own inboxes; a chat that runs the inbox's real bot on every line so far (the offline bot,
or a language model: here the fake provider over real HTTP) with nothing stored or sent; the
reply, menu, handoff, knowledge, tool calls, tokens, cost and latency shown and escaped; htmx
or plain form posts, CSRF, no inline scripts."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from bots.models import BotConfig, BotRun, KnowledgeEntry, ModelPrice
from conversations.models import Conversation, Customer, Inbox, Membership, Message
from handoffs.models import Handoff
from tests import fake_openai as fake

pytest_plugins = ["tests.conftest_openai"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

URL = "/console/bots/try/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def client_for(user: User | None, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def people(inbox: Inbox) -> Any:
    other = Inbox.objects.create(name="Filial Norte", phone_number_id="PNID_TRY_B", app_secret="b")
    users = {
        "admin": User.objects.create_superuser("root"),
        "supervisor": User.objects.create_user("renata", is_staff=True),
        "attendant": User.objects.create_user("ana"),
        "other_supervisor": User.objects.create_user("sergio", is_staff=True),
    }
    Membership.objects.create(user=users["supervisor"], inbox=inbox, role=Membership.Role.SUPERVISOR)
    Membership.objects.create(user=users["attendant"], inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=users["other_supervisor"], inbox=other, role=Membership.Role.SUPERVISOR)
    return type("People", (), {**users, "inbox": inbox, "other": other})


def stored() -> tuple[int, int, int, int, int]:
    """Everything a trial must leave untouched."""
    return (
        Customer.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        BotRun.objects.count(),
        Handoff.objects.count(),
    )


def said(html: str) -> str:
    return re.sub(r"\s+", " ", html)


# --- Access -------------------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(people: Any) -> None:
    for method in ("get", "post"):
        response = getattr(client_for(None), method)(URL, {"inbox": people.inbox.pk, "text": "oi"})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_it_refuses_attendants(people: Any) -> None:
    client = client_for(people.attendant)
    before = stored()

    assert client.get(URL).status_code == 403
    assert client.get(URL, {"inbox": people.inbox.pk}).status_code == 403
    assert client.post(URL, {"inbox": people.inbox.pk, "text": "oi"}).status_code == 403
    assert stored() == before


def test_it_keeps_a_supervisor_to_the_inboxes_they_supervise(people: Any) -> None:
    client = client_for(people.other_supervisor)
    before = stored()

    mine = client.get(URL)
    theirs = client.get(URL, {"inbox": people.inbox.pk})
    posted = client.post(URL, {"inbox": people.inbox.pk, "text": "oi"})

    assert mine.status_code == 200
    assert [inbox.pk for inbox in mine.context["inboxes"]] == [people.other.pk]
    assert people.inbox.name not in mine.content.decode()
    assert (theirs.status_code, posted.status_code) == (404, 404)
    assert client.get(URL, {"inbox": "x"}).status_code == 404
    assert stored() == before


def test_it_offers_an_admin_every_inbox(people: Any) -> None:
    response = client_for(people.admin).get(URL)

    assert response.status_code == 200
    assert {inbox.pk for inbox in response.context["inboxes"]} == {people.inbox.pk, people.other.pk}


def test_it_links_the_page_from_the_console_for_supervisors_only(people: Any) -> None:
    index = reverse("console:index")

    assert f'href="{URL}"' in client_for(people.supervisor).get(index).content.decode()
    assert f'href="{URL}"' not in client_for(people.attendant).get(index).content.decode()


def test_it_renders_a_form_with_csrf_and_no_inline_script(people: Any) -> None:
    client = client_for(people.supervisor, enforce_csrf_checks=True)

    response = client.get(URL, {"inbox": people.inbox.pk})

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'action="{URL}"' in html and 'method="post"' in html and f'hx-post="{URL}"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no inline event handlers either
    # A post without the token is refused.
    assert client.post(URL, {"inbox": people.inbox.pk, "text": "oi"}).status_code == 403


def test_it_asks_for_text_before_running_anything(people: Any) -> None:
    before = stored()

    response = client_for(people.supervisor).post(URL, {"inbox": people.inbox.pk, "line": ["oi"], "text": "  "})

    assert response.status_code == 200
    assert "Write something first." in response.content.decode()
    assert response.context["lines"] == ["oi"]
    assert stored() == before


def test_it_stops_a_trial_that_grew_too_long(people: Any) -> None:
    response = client_for(people.supervisor).post(
        URL, {"inbox": people.inbox.pk, "line": [f"linha {n}" for n in range(12)], "text": "mais uma"}
    )

    assert "start over" in response.content.decode()
    assert response.context["exchanges"] == []


# --- Real runs ------------------------------------------------------------------------------------


def test_it_runs_the_offline_bot_and_shows_its_handoff_with_nothing_stored(people: Any) -> None:
    # given: the inbox's default bot (offline), and a customer who asks for a person
    client = client_for(people.supervisor)
    before = stored()

    # when
    response = client.post(URL, {"inbox": people.inbox.pk, "text": "quero falar com um atendente pfv"})

    # then
    html = said(response.content.decode())
    assert response.status_code == 200
    (exchange,) = response.context["exchanges"]
    assert exchange.result.handoff is True
    assert exchange.result.reason == Handoff.Reason.CUSTOMER_REQUEST
    assert "Handed to a person</strong>: Customer asked for a person" in html
    assert "Offline bot" in html
    # the line is carried for the next send, and nothing was stored or sent
    assert '<input type="hidden" name="line" value="quero falar com um atendente pfv">' in html
    assert stored() == before


def test_it_answers_from_the_knowledge_base_and_keeps_the_conversation_across_sends(people: Any) -> None:
    config = BotConfig.objects.create(inbox=people.inbox, business_kind=BotConfig.BusinessKind.SALON)
    KnowledgeEntry.objects.create(
        bot=config,
        title="Quanto custa o corte feminino?",
        body="O corte feminino custa R$ 90 e inclui lavagem.",
        keywords="preço, valor, corte, quanto custa",
        in_menu=True,
    )
    client = client_for(people.supervisor)
    before = stored()

    # when: a greeting, then (htmx) a question, sent with the first line
    first = client.post(URL, {"inbox": people.inbox.pk, "text": "Oi, boa tarde"})
    second = client.post(
        URL, {"inbox": people.inbox.pk, "line": ["Oi, boa tarde"], "text": "quanto custa o corte?"}, **HTMX
    )

    # then: the partial only, with both lines answered in one conversation
    html = said(second.content.decode())
    assert first.status_code == second.status_code == 200
    assert html.lstrip().startswith('<section id="try-chat"')
    assert "<html" not in html
    customer = re.findall(r'<p class="try-turn__customer">(?:<span[^>]*>[^<]*</span>)?([^<]*)</p>', html)
    assert customer == ["Oi, boa tarde", "quanto custa o corte?"]
    replies = re.findall(r'<p class="try-turn__reply">(.*?)</p>', html)
    assert len(replies) == 2 and "R$ 90" in replies[1]
    # the greeting got the menu (the topic in the menu and a person), the question its answer
    options = re.findall(r'<ul class="try-turn__options"[^>]*>(.*?)</ul>', html)
    assert options and options[0].count("<li>") >= 2
    knowledge = re.findall(r'<ul class="try-turn__knowledge">(.*?)</ul>', html)
    assert "Quanto custa o corte feminino?" in knowledge[1]
    assert "Quanto custa o corte feminino?" in html
    assert stored() == before


def test_it_shows_a_models_tool_calls_tokens_cost_and_latency(people: Any, llm_bot: BotConfig, fake_openai) -> None:
    # given: the model records a lead, then answers; its price is known
    ModelPrice.objects.create(model="fake-model", input_per_million=Decimal("2"), output_per_million=Decimal("8"))
    fake_openai.chat(
        fake.tool_calls(
            fake.call("record_lead", {"fields": {"name": "Maria", "service": "corte <b>curto</b>"}}),
            tokens_in=500,
            tokens_out=30,
            model="fake-model",
        ),
        fake.answer("Anotado, Maria! Posso ajudar com <mais> algo?", tokens_in=600, tokens_out=40, model="fake-model"),
    )
    client = client_for(people.supervisor)
    before = stored()

    # when
    response = client.post(URL, {"inbox": people.inbox.pk, "text": "Sou a Maria, quero um corte curto"})

    # then
    html = said(response.content.decode())
    (exchange,) = response.context["exchanges"]
    assert exchange.result.tokens_in == 1100 and exchange.result.tokens_out == 70
    assert "Anotado, Maria! Posso ajudar com &lt;mais&gt; algo?" in html
    assert "<mais>" not in html and "<b>curto</b>" not in html
    assert "<code>record_lead</code>" in html
    assert "&quot;service&quot;: &quot;corte &lt;b&gt;curto&lt;/b&gt;&quot;" in html
    assert "1100 in / 70 out tokens" in html
    assert f"US$ {exchange.result.cost:.6f}" in html
    assert exchange.result.cost == Decimal("0.002760")
    assert re.search(r"· \d+ ms", html)
    assert "Language model" in html
    # The key went to the provider, never onto the page.
    assert llm_bot.api_key not in html
    assert stored() == before


def test_it_shows_a_provider_failure_as_the_customer_would_meet_it(
    people: Any, llm_bot: BotConfig, fake_openai
) -> None:
    # given: the provider answers 503 to every request
    fake_openai.chat(*[fake.error(503) for _ in range(6)])
    client = client_for(people.supervisor)

    # when
    response = client.post(URL, {"inbox": people.inbox.pk, "text": "Vocês abrem sábado?"})

    # then: the customer would get an apology and a person; the page says why
    html = said(response.content.decode())
    (exchange,) = response.context["exchanges"]
    assert exchange.result.handoff is True and exchange.result.reason == Handoff.Reason.BOT_FAILURE
    assert exchange.result.reply
    assert "Handed to a person</strong>: The bot failed" in html
    assert '<p class="try-turn__error">Error:' in html
    assert llm_bot.api_key not in html
