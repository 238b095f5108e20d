"""Knowledge search (bots.knowledge.search) on both backends: PostgreSQL full-text in Portuguese
with accents folded plus word scoring, and the word scoring alone on SQLite."""

from __future__ import annotations

import pytest
from django.db import connection

from bots import knowledge
from bots.demo import fill_demo_bot
from bots.models import BotConfig, KnowledgeEntry
from conversations.models import Inbox


@pytest.fixture
def demo_bot(inbox: Inbox) -> BotConfig:
    return fill_demo_bot(inbox.pk)


def other_bot() -> BotConfig:
    inbox = Inbox.objects.create(name="Other", phone_number_id="OTHER_PNID", display_number="5511900000001")
    return BotConfig.objects.create(inbox=inbox)


def titles(config: BotConfig, query: str, limit: int = 3) -> list[str]:
    return [entry.title for entry in knowledge.search(config, query, limit)]


QUESTIONS = [
    ("quanto custa a escova?", "Quanto custa a escova?"),
    ("preco da escova", "Quanto custa a escova?"),
    ("Qual o preço da escova progressiva?", "Quanto custa a escova progressiva?"),
    ("valor da progressiva", "Quanto custa a escova progressiva?"),
    ("qto ta a progresiva", "Quanto custa a escova progressiva?"),
    ("vcs abrem sabado?", "Horário de funcionamento"),
    ("Vocês abrem sábado?", "Horário de funcionamento"),
    ("que horas vcs fecham", "Horário de funcionamento"),
    ("qual o endereço?", "Endereço e como chegar"),
    ("onde fica o salão?", "Endereço e como chegar"),
    ("tem estacionamento?", "Estacionamento"),
    ("onde posso estacionar o carro", "Estacionamento"),
    ("aceitam pix?", "Formas de pagamento"),
    ("da pra parcelar no cartao?", "Formas de pagamento"),
    ("quanto custa o corte masculino", "Quanto custa o corte de cabelo?"),
    ("qnto é pra cortar o cabelo", "Quanto custa o corte de cabelo?"),
    ("fazem luzes?", "Coloração, mechas e luzes"),
    ("quero pintar o cabelo de loiro", "Coloração, mechas e luzes"),
    ("valor da manicure", "Manicure, pedicure e unhas em gel"),
    ("unha em gel", "Manicure, pedicure e unhas em gel"),
    ("depilacao a laser na axila", "Depilação a laser"),
    ("como faço pra marcar um horario?", "Como agendar"),
    ("quero agendar", "Como agendar"),
    ("qual a politica de cancelamento", "Política de cancelamento e atrasos"),
    ("posso desmarcar?", "Política de cancelamento e atrasos"),
    ("quais produtos vocês usam?", "Produtos que usamos e vendemos"),
    ("atendem criança?", "Atendem crianças?"),
    ("vale presente", "Vale-presente"),
    ("fazem botox?", "Avaliação estética e toxina botulínica"),
    ("LIMPEZA DE PELE", "Limpeza de pele e tratamentos faciais"),
    ("sobrancelha com hena", "Sobrancelhas e cílios"),
    ("quanto tempo dura a progressiva?", "Quanto custa a escova progressiva?"),
    ("quanto custa pra pintar o cabelo?", "Coloração, mechas e luzes"),
    ("quero fazer luzes, quanto fica?", "Coloração, mechas e luzes"),
    ("posso levar meu filho?", "Atendem crianças?"),
    ("tem horário amanhã?", "Como agendar"),
    ("quero agendar pra sábado", "Como agendar"),
    ("tem vaga pra carro?", "Estacionamento"),
    ("e o preço da hidratação?", "Preços dos serviços"),
    ("que horas abre?", "Horário de funcionamento"),
    ("Vocês trabalham no feriado?", "Horário de funcionamento"),
    ("parcelam?", "Formas de pagamento"),
]


@pytest.mark.parametrize(("query", "title"), QUESTIONS)
def test_it_finds_the_entry_that_answers_the_question(demo_bot: BotConfig, query: str, title: str) -> None:
    found = titles(demo_bot, query)
    assert found, query
    assert found[0] == title, (query, found)


@pytest.mark.parametrize(
    "query", ["", "   ", "???", "oi", "bom dia", "xyzzy qwerty", "a de o que", "🤔", "<b></b>", "1234567"]
)
def test_it_finds_nothing_for_noise_or_small_talk(demo_bot: BotConfig, query: str) -> None:
    assert knowledge.search(demo_bot, query) == []


def test_it_finds_nothing_for_an_unrelated_question(demo_bot: BotConfig) -> None:
    assert knowledge.search(demo_bot, "vocês consertam geladeira?") == []
    assert knowledge.search(demo_bot, "qual a capital da França") == []
    assert knowledge.search(demo_bot, "quero comprar um cachorro") == []
    assert knowledge.search(demo_bot, "vocês vendem carro?") == []


def test_it_folds_accents_both_ways(db: None, inbox: Inbox) -> None:
    config = BotConfig.objects.create(inbox=inbox)
    KnowledgeEntry.objects.create(bot=config, title="Hidratacao capilar", body="R$ 90.", keywords="")
    KnowledgeEntry.objects.create(bot=config, title="Coloração", body="A partir de R$ 180.", keywords="")
    assert titles(config, "hidratação") == ["Hidratacao capilar"]
    assert titles(config, "coloracao") == ["Coloração"]


def test_it_reads_only_the_bots_active_entries(db: None, inbox: Inbox) -> None:
    config = BotConfig.objects.create(inbox=inbox)
    KnowledgeEntry.objects.create(bot=config, title="Escova", body="R$ 80.", active=False)
    KnowledgeEntry.objects.create(bot=other_bot(), title="Escova", body="R$ 95.")
    assert knowledge.search(config, "escova") == []
    live = KnowledgeEntry.objects.create(bot=config, title="Escova", body="R$ 80.")
    assert knowledge.search(config, "escova") == [live]


def test_it_respects_the_limit_and_orders_best_first(demo_bot: BotConfig) -> None:
    found = knowledge.search(demo_bot, "escova progressiva preço", limit=2)
    assert len(found) == 2
    assert found[0].title == "Quanto custa a escova progressiva?"
    assert found[0].search_score >= found[1].search_score
    assert knowledge.search(demo_bot, "escova", limit=0) == []
    assert len(knowledge.search(demo_bot, "preço", limit=10)) > 3


def test_the_keywords_find_an_entry_whose_title_does_not_say_it(db: None, inbox: Inbox) -> None:
    config = BotConfig.objects.create(inbox=inbox)
    KnowledgeEntry.objects.create(bot=config, title="Horário", body="Terça a sábado.", keywords="abre, domingo")
    KnowledgeEntry.objects.create(bot=config, title="Preços", body="Veja a tabela.", keywords="valor, quanto custa")
    assert titles(config, "vcs abrem domingo?") == ["Horário"]
    assert titles(config, "qual o valor?")[0] == "Preços"


def test_an_unsaved_config_has_no_knowledge(db: None) -> None:
    assert knowledge.search(BotConfig(), "escova") == []


@pytest.mark.postgres
def test_postgres_ranks_by_portuguese_stems_with_accents_folded(demo_bot: BotConfig) -> None:
    assert connection.vendor == "postgresql"
    entries = knowledge._entries(demo_bot, ["progressivas", "alisamentos"])
    # The full-text rank (Portuguese stemmer, accents folded) puts the answer first.
    assert entries[0].title == "Quanto custa a escova progressiva?"
    assert entries[0].rank > 0
    assert entries[-1].rank == 0
    entries = knowledge._entries(demo_bot, ["coloracao"])
    assert entries[0].title == "Coloração, mechas e luzes"


@pytest.mark.postgres
def test_postgres_survives_query_words_the_parser_would_choke_on(demo_bot: BotConfig) -> None:
    assert knowledge.search(demo_bot, "escova & | ! ( ) : * ' \\ progressiva")[0].title == (
        "Quanto custa a escova progressiva?"
    )
    assert knowledge.search(demo_bot, "e o a de") == []


def test_a_bare_entry_is_found_despite_typos_accents_and_other_words(db: None, inbox: Inbox) -> None:
    # given: an entry with no keywords, as an admin types it in a hurry
    config = BotConfig.objects.create(inbox=inbox)
    brush = KnowledgeEntry.objects.create(bot=config, title="Quanto custa a escova progressiva?", body="R$ 350.")
    KnowledgeEntry.objects.create(bot=config, title="Horário", body="Terça a sábado, das 9h às 19h.")

    # then
    for query in ("preco da escova", "ecova progresiva", "PREÇO ESCOVA PROGRESSIVA", "valor progressiva?"):
        assert knowledge.search(config, query) == [brush], query
    assert knowledge.search(config, "preço do corte") == []
