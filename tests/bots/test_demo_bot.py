"""The demo inbox's bot (bots.demo): seed_demo fills in a São Paulo salon and clinic once, and the
offline bot answers real questions from its knowledge base."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import translation

from bots import offline
from bots.demo import KNOWLEDGE, fill_demo_bot
from bots.models import BotConfig, BusinessHours, KnowledgeEntry
from bots.turn import Line, Turn
from conversations import signals
from conversations.models import Inbox

PNID = "106540352242922"


@pytest.fixture
def demo_settings(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.PRODUCTION = False
    settings.WHATSAPP_PHONE_NUMBER_ID = PNID
    settings.WHATSAPP_APP_SECRET = "demo-app-secret"
    settings.WHATSAPP_ACCESS_TOKEN = "demo-access-token"
    settings.WHATSAPP_VERIFY_TOKEN = "demo-verify-token"
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    return settings


def seed() -> None:
    call_command("seed_demo", "--quiet", stdout=StringIO())


def ask(config: BotConfig, text: str) -> str:
    turn = Turn(
        config=config,
        history=[Line(role="customer", text=text)],
        new=[Line(role="customer", text=text)],
        now=datetime(2026, 11, 24, 15, tzinfo=UTC),
    )
    with translation.override("en"):
        return offline.decide(turn).reply


@pytest.mark.django_db
def test_seeding_twice_gives_one_bot_and_no_duplicate_entries(demo_settings: Any) -> None:
    seed()
    seed()
    inbox = Inbox.objects.get(phone_number_id=PNID)
    config = BotConfig.objects.get(inbox=inbox)
    assert BotConfig.objects.count() == 1
    titles = list(KnowledgeEntry.objects.filter(bot=config).values_list("title", flat=True))
    assert len(titles) == len(set(titles)) == len(KNOWLEDGE)
    assert 15 <= len(titles) <= 25
    assert config.hours.count() == 5


@pytest.mark.django_db
def test_the_demo_bot_answers_prices_and_opening_days(demo_settings: Any) -> None:
    seed()
    config = BotConfig.objects.get(inbox__phone_number_id=PNID)
    assert ask(config, "quanto custa a escova?").startswith("A escova custa R$ 80")
    assert "sábados" in ask(config, "vcs abrem sabado?")
    assert "Rua dos Pinheiros" in ask(config, "qual o endereço?")
    assert "Pix" in ask(config, "aceitam pix?")


@pytest.mark.django_db
def test_the_demo_business_is_a_sao_paulo_salon_open_tuesday_to_saturday(demo_settings: Any) -> None:
    seed()
    config = BotConfig.objects.get(inbox__phone_number_id=PNID)
    assert config.business_name.startswith("Studio Bella Vista")
    assert "Pinheiros, São Paulo" in config.business_address
    assert "Pix" in config.payment_methods
    assert "R$" in config.services
    assert config.greeting
    assert config.handoff_topics.strip()
    assert config.timezone == "America/Sao_Paulo"
    hours = [(h.weekday, h.opens, h.closes) for h in config.hours.all()]
    assert [weekday for weekday, _, _ in hours] == [1, 2, 3, 4, 5]
    assert hours[-1] == (BusinessHours.Weekday.SATURDAY, time(8), time(18))
    entries = KnowledgeEntry.objects.filter(bot=config)
    assert all(entry.keywords for entry in entries)
    assert 3 <= entries.filter(in_menu=True).count() <= 9


@pytest.mark.django_db
def test_a_bot_with_its_own_knowledge_is_left_alone(inbox: Inbox) -> None:
    config = BotConfig.objects.create(inbox=inbox, business_name="Padaria", greeting="Oi!")
    KnowledgeEntry.objects.create(bot=config, title="Pão", body="R$ 1.")
    signals.demo_seeded.send(sender=None, inbox_id=inbox.pk)
    config.refresh_from_db()
    assert (config.business_name, config.greeting) == ("Padaria", "Oi!")
    assert list(config.knowledge.values_list("title", flat=True)) == ["Pão"]
    assert config.hours.count() == 0


@pytest.mark.django_db
def test_the_signal_fills_a_bot_created_without_knowledge(inbox: Inbox) -> None:
    BotConfig.objects.create(inbox=inbox)
    signals.demo_seeded.send(sender=None, inbox_id=inbox.pk)
    config = BotConfig.objects.get(inbox=inbox)
    assert config.knowledge.count() == len(KNOWLEDGE)
    assert config.business_kind == BotConfig.BusinessKind.CLINIC


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_seeds_at_once_fill_the_knowledge_base_once(inbox: Inbox) -> None:
    assert connection.vendor == "postgresql"
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(5)
            fill_demo_bot(inbox.pk)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert BotConfig.objects.filter(inbox=inbox).count() == 1
    assert KnowledgeEntry.objects.filter(bot__inbox=inbox).count() == len(KNOWLEDGE)
    assert BusinessHours.objects.filter(bot__inbox=inbox).count() == 5
