"""The bots in the Django admin: the API key is write-only (never on a page or in a log, kept
when left empty, cleared on request), the inlines save, a supervisor sees only their inboxes'
bots and never the provider's address or key, national holidays are everyone's and only a
superuser's to change, and the records of what the bots did are read-only."""

from __future__ import annotations

import logging
from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from bots.models import BotConfig, BotRun, BusinessHours, Holiday, KnowledgeEntry, ModelPrice
from conversations.models import Conversation, Customer, Inbox, Membership

pytestmark = pytest.mark.django_db

KEY = "gsk_live_Sup3rS3cretKeyThatMustNeverShow_9876"


# --- Helpers -------------------------------------------------------------------------------------


def _value(field: Any) -> Any:
    value = field.value()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else None
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return value


def form_data(response: Any) -> dict[str, Any]:
    """The change page's own POST data: the main form's and every inline's current values."""
    data: dict[str, Any] = {"_save": "1"}
    for fieldset in response.context["adminform"]:
        for line in fieldset:
            for admin_field in line:
                if getattr(admin_field, "is_readonly", False):
                    continue
                value = _value(admin_field.field)
                if value is not None:
                    data[admin_field.field.html_name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for key, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{key}"] = value
        for form in formset.forms:
            for name in form.fields:
                value = _value(form[name])
                if value is not None:
                    data[form[name].html_name] = value
    return data


def bot_url(bot: BotConfig) -> str:
    return reverse("admin:bots_botconfig_change", args=[bot.pk])


@pytest.fixture
def bot(inbox: Inbox) -> BotConfig:
    return BotConfig.objects.create(
        inbox=inbox, base_url="https://api.groq.com/openai/v1", model="llama-3.3-70b-versatile", api_key=KEY
    )


@pytest.fixture
def supervisor(inbox: Inbox) -> User:
    user = User.objects.create_user("renata", is_staff=True)
    Membership.objects.create(user=user, inbox=inbox, role=Membership.Role.SUPERVISOR)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="bots"))
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- The API key ---------------------------------------------------------------------------------


def test_it_never_renders_the_api_key_on_the_change_page(admin_client: Client, bot: BotConfig) -> None:
    response = admin_client.get(bot_url(bot))

    html = response.content.decode()
    assert response.status_code == 200
    assert KEY not in html
    assert KEY[4:-2] not in html
    assert bot.masked_api_key in html  # "gsk_…46": recognisable, not usable
    assert 'type="password"' in html
    assert f'href="/console/bots/try/?inbox={bot.inbox_id}"' in html


def test_it_never_renders_the_api_key_in_the_list_history_or_after_an_error(
    admin_client: Client, bot: BotConfig
) -> None:
    # given: a save that fails validation (a bad time zone) after typing a new key
    data = form_data(admin_client.get(bot_url(bot)))
    new_key = "sk-proj-AnotherSecretTypedByTheAdmin123"
    response = admin_client.post(bot_url(bot), {**data, "api_key": new_key, "timezone": "Mars/Olympus"})

    # then: the form comes back with the error, and neither key in it
    assert response.status_code == 200
    assert "timezone" in response.context["adminform"].form.errors
    assert new_key not in response.content.decode()
    assert KEY not in response.content.decode()
    for url in (reverse("admin:bots_botconfig_changelist"), reverse("admin:bots_botconfig_history", args=[bot.pk])):
        assert KEY not in admin_client.get(url).content.decode()


def test_it_keeps_the_stored_key_when_the_field_is_left_empty(admin_client: Client, bot: BotConfig) -> None:
    data = form_data(admin_client.get(bot_url(bot)))
    assert data["api_key"] == ""

    response = admin_client.post(bot_url(bot), {**data, "name": "Bia"})

    assert response.status_code == 302
    bot.refresh_from_db()
    assert (bot.name, bot.api_key) == ("Bia", KEY)


def test_it_replaces_the_key_when_a_new_one_is_typed(admin_client: Client, bot: BotConfig, caplog: Any) -> None:
    data = form_data(admin_client.get(bot_url(bot)))

    with caplog.at_level(logging.DEBUG):
        response = admin_client.post(bot_url(bot), {**data, "api_key": "  sk-new-key-0123456789  "})

    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.api_key == "sk-new-key-0123456789"
    # Neither in the logs nor in the admin's own history record.
    assert "sk-new-key-0123456789" not in caplog.text
    assert KEY not in caplog.text
    entry = LogEntry.objects.get(object_id=str(bot.pk))
    assert "sk-new-key" not in entry.change_message
    assert KEY not in entry.change_message


def test_it_clears_the_key_with_the_checkbox(admin_client: Client, bot: BotConfig) -> None:
    data = form_data(admin_client.get(bot_url(bot)))

    response = admin_client.post(bot_url(bot), {**data, "clear_api_key": "on"})

    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.api_key == ""
    assert bot.base_url == "https://api.groq.com/openai/v1"


def test_it_refuses_a_new_key_and_clear_at_once(admin_client: Client, bot: BotConfig) -> None:
    data = form_data(admin_client.get(bot_url(bot)))

    response = admin_client.post(bot_url(bot), {**data, "clear_api_key": "on", "api_key": "sk-other-123456789"})

    assert response.status_code == 200
    assert "api_key" in response.context["adminform"].form.errors
    bot.refresh_from_db()
    assert bot.api_key == KEY


# --- Inlines -------------------------------------------------------------------------------------


def test_it_saves_hours_own_holidays_and_knowledge_inline(admin_client: Client, bot: BotConfig) -> None:
    # given: the page's own data, with one new row in each inline
    data = form_data(admin_client.get(bot_url(bot)))
    data.update(
        {
            "hours-TOTAL_FORMS": "2",
            "hours-0-weekday": "0",
            "hours-0-opens": "09:00",
            "hours-0-closes": "12:00",
            "hours-1-weekday": "0",
            "hours-1-opens": "13:00",
            "hours-1-closes": "18:00",
            "holidays-TOTAL_FORMS": "1",
            "holidays-0-date": "2026-12-24",
            "holidays-0-name": "Véspera de Natal",
            "knowledge-TOTAL_FORMS": "1",
            "knowledge-0-title": "Quanto custa o corte?",
            "knowledge-0-kind": "faq",
            "knowledge-0-body": "Corte feminino R$ 90, masculino R$ 60.",
            "knowledge-0-keywords": "preço, valor, corte",
            "knowledge-0-in_menu": "on",
            "knowledge-0-active": "on",
            "knowledge-0-position": "1",
        }
    )

    # when
    response = admin_client.post(bot_url(bot), data)

    # then
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    hours = [(h.weekday, h.opens, h.closes) for h in BusinessHours.objects.filter(bot=bot)]
    assert hours == [(0, time(9), time(12)), (0, time(13), time(18))]
    assert list(Holiday.objects.filter(bot=bot).values_list("date", "name")) == [
        (date(2026, 12, 24), "Véspera de Natal")
    ]
    entry = KnowledgeEntry.objects.get(bot=bot)
    assert (entry.title, entry.in_menu, entry.active, entry.keywords) == (
        "Quanto custa o corte?",
        True,
        True,
        "preço, valor, corte",
    )
    bot.refresh_from_db()
    assert bot.api_key == KEY


def test_it_refuses_hours_that_close_before_they_open(admin_client: Client, bot: BotConfig) -> None:
    data = form_data(admin_client.get(bot_url(bot)))
    data.update({"hours-TOTAL_FORMS": "1", "hours-0-weekday": "2", "hours-0-opens": "18:00", "hours-0-closes": "09:00"})

    response = admin_client.post(bot_url(bot), data)

    assert response.status_code == 200
    assert not BusinessHours.objects.filter(bot=bot).exists()


# --- Supervisors ---------------------------------------------------------------------------------


def test_it_hides_the_providers_address_and_key_from_a_supervisor(bot: BotConfig, supervisor: User) -> None:
    client = client_for(supervisor)

    response = client.get(bot_url(bot))

    html = response.content.decode()
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "api_key" not in form.fields
    assert "base_url" not in form.fields
    assert bot.masked_api_key not in html
    assert KEY not in html
    assert 'name="persona"' in html


def test_it_ignores_a_base_url_or_key_posted_by_a_supervisor(bot: BotConfig, supervisor: User) -> None:
    client = client_for(supervisor)
    data = form_data(client.get(bot_url(bot)))

    response = client.post(
        bot_url(bot),
        {**data, "base_url": "https://evil.example/v1", "api_key": "x", "clear_api_key": "on", "persona": "Gentil"},
    )

    assert response.status_code == 302
    bot.refresh_from_db()
    assert (bot.base_url, bot.api_key, bot.persona) == ("https://api.groq.com/openai/v1", KEY, "Gentil")


def test_it_keeps_a_supervisor_to_their_inboxes_bots(bot: BotConfig, supervisor: User) -> None:
    other = BotConfig.objects.create(
        inbox=Inbox.objects.create(name="Filial", phone_number_id="PNID_B", app_secret="b"), name="Robo-da-Filial"
    )
    KnowledgeEntry.objects.create(bot=other, title="SEGREDO-DA-FILIAL", body="x")
    client = client_for(supervisor)

    listing = client.get(reverse("admin:bots_botconfig_changelist")).content.decode()
    theirs = client.get(reverse("admin:bots_botconfig_change", args=[other.pk]))
    knowledge = client.get(reverse("admin:bots_knowledgeentry_changelist")).content.decode()

    assert bot.name in listing and "Robo-da-Filial" not in listing
    assert theirs.status_code == 302  # to the index, as for a row that does not exist
    assert "SEGREDO-DA-FILIAL" not in knowledge


def test_it_keeps_attendants_out_of_the_bots_admin(inbox: Inbox, bot: BotConfig) -> None:
    attendant = User.objects.create_user("ana", is_staff=True)
    Membership.objects.create(user=attendant, inbox=inbox, role=Membership.Role.ATTENDANT)
    attendant.user_permissions.set(Permission.objects.filter(content_type__app_label="bots"))
    client = client_for(attendant)

    response = client.get(bot_url(bot))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


# --- Holidays, prices, records -------------------------------------------------------------------


def test_it_lists_the_national_holidays_by_year(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:bots_holiday_changelist"), {"year": "2027", "kind": "national"})

    names = [holiday.name for holiday in response.context["cl"].result_list]
    assert "Tiradentes" in names
    assert all(holiday.date.year == 2027 and holiday.bot_id is None for holiday in response.context["cl"].result_list)
    assert len(names) == Holiday.objects.filter(bot__isnull=True, date__year=2027).count() > 0


def test_it_shows_national_holidays_to_a_supervisor_without_letting_them_change_one(
    bot: BotConfig, supervisor: User
) -> None:
    national = Holiday.objects.filter(bot__isnull=True, date__year=2027).first()
    client = client_for(supervisor)

    listing = client.get(reverse("admin:bots_holiday_changelist"), {"year": "2027"})
    response = client.post(
        reverse("admin:bots_holiday_change", args=[national.pk]), {"date": "2027-01-02", "name": "Mudado"}
    )

    assert national in listing.context["cl"].result_list
    assert response.status_code == 403
    national.refresh_from_db()
    assert national.name != "Mudado"


def test_it_keeps_model_prices_to_superusers(admin_client: Client, supervisor: User) -> None:
    ModelPrice.objects.create(model="gpt-4o-mini", input_per_million=Decimal("0.15"), output_per_million=Decimal("0.6"))

    assert admin_client.get(reverse("admin:bots_modelprice_changelist")).status_code == 200
    assert client_for(supervisor).get(reverse("admin:bots_modelprice_changelist")).status_code == 403


def test_it_shows_bot_turns_read_only(admin_client: Client, inbox: Inbox) -> None:
    conversation = Conversation.objects.create(inbox=inbox, customer=Customer.objects.create(wa_id="5511911112222"))
    run = BotRun.objects.create(
        conversation=conversation,
        outcome=BotRun.Outcome.HANDOFF,
        engine=BotRun.Engine.LLM,
        model="gpt-4o-mini",
        tokens_in=812,
        tokens_out=64,
        cost=Decimal("0.000160"),
        latency_ms=1234,
        knowledge=[{"id": 3, "title": "<b>Preços</b>"}],
        tool_calls=[{"name": "handoff_to_human", "arguments": {"reason": "complaint"}}],
        error="",
    )

    response = admin_client.get(reverse("admin:bots_botrun_change", args=[run.pk]))
    listing = admin_client.get(reverse("admin:bots_botrun_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "handoff_to_human" in html and "1234" in html
    assert "<b>Preços</b>" not in html  # escaped
    assert not response.context["adminform"].form.fields  # nothing editable
    assert listing.status_code == 200 and "gpt-4o-mini" in listing.content.decode()


def test_it_offers_a_supervisor_only_their_inboxes_and_bots_when_adding(bot: BotConfig, supervisor: User) -> None:
    other_inbox = Inbox.objects.create(name="Filial", phone_number_id="PNID_B", app_secret="b")
    other = BotConfig.objects.create(inbox=other_inbox, name="Robo-da-Filial")
    client = client_for(supervisor)

    inboxes = client.get(reverse("admin:bots_botconfig_add")).context["adminform"].form.fields["inbox"].queryset
    bots = client.get(reverse("admin:bots_holiday_add")).context["adminform"].form.fields["bot"].queryset
    day = {"date": "2027-03-19", "name": "São José"}
    refused = client.post(reverse("admin:bots_holiday_add"), {**day, "bot": other.pk})
    national = client.post(reverse("admin:bots_holiday_add"), {**day, "bot": ""})

    assert list(inboxes) == [bot.inbox]
    assert list(bots) == [bot]
    assert refused.status_code == national.status_code == 200  # the form's errors, nothing saved
    assert not Holiday.objects.filter(name="São José").exists()


def test_it_searches_and_filters_the_knowledge_base(admin_client: Client, bot: BotConfig) -> None:
    KnowledgeEntry.objects.create(bot=bot, title="Formas de pagamento", body="Pix, cartão", keywords="pix")
    KnowledgeEntry.objects.create(bot=bot, title="Endereço", body="Rua Augusta, 100", active=False)
    url = reverse("admin:bots_knowledgeentry_changelist")

    found = admin_client.get(url, {"q": "pix"}).context["cl"].result_list
    inactive = admin_client.get(url, {"active__exact": "0"}).context["cl"].result_list

    assert [entry.title for entry in found] == ["Formas de pagamento"]
    assert [entry.title for entry in inactive] == ["Endereço"]


def _rows_for(model: str, n: int, inbox: Inbox, bot: BotConfig) -> None:
    from bots.models import Lead

    for i in range(n):
        customer = Customer.objects.create(wa_id=f"55119{model[:3]}{Customer.objects.count():06d}", name=f"C{i}")
        conversation = Conversation.objects.create(inbox=inbox, customer=customer, status=Conversation.Status.CLOSED)
        if model == "botrun":
            BotRun.objects.create(conversation=conversation, outcome="replied", engine="offline")
        elif model == "lead":
            Lead.objects.create(conversation=conversation, data={"name": f"C{i}", "service": "corte"})
        elif model == "knowledgeentry":
            KnowledgeEntry.objects.create(bot=bot, title=f"Pergunta {Customer.objects.count()}", body="r")
        elif model == "holiday":
            Holiday.objects.create(bot=bot, date=date(2030, 1, 2 + Customer.objects.count() % 27), name=f"H{i}")
        elif model == "botconfig":
            other = Inbox.objects.create(name=f"Caixa {customer.pk}", phone_number_id=f"PNID_{customer.pk}")
            BotConfig.objects.create(inbox=other)


@pytest.mark.parametrize("model", ["botconfig", "knowledgeentry", "holiday", "botrun", "lead"])
def test_it_lists_rows_without_a_query_per_row(
    admin_client: Client, bot: BotConfig, model: str, django_assert_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse(f"admin:bots_{model}_changelist")
    _rows_for(model, 2, bot.inbox, bot)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    _rows_for(model, 6, bot.inbox, bot)

    with django_assert_num_queries(len(few.captured_queries)):
        admin_client.get(url)
