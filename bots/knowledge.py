"""Finding the knowledge entries that answer a customer's message.

``search(config, query)`` scores the bot's active entries by the words they share with the
query, the way customers write: accents folded, WhatsApp abbreviations expanded, typos and
plurals forgiven ("preco da ecova" finds "Quanto custa a escova progressiva?"), a few
Portuguese synonyms ("valor"/"preço"/"custa", "abre"/"horário"), rare words weighing more than
common ones, the title and keywords more than the body.

On PostgreSQL the database's full-text search in Portuguese with accents folded (the
``portuguese_unaccent`` configuration of conversations migration 0005: Portuguese stemming)
ranks the candidates and its rank orders the entries that answer; whether an entry answers at
all is the word scoring's call on both backends, so SQLite and PostgreSQL answer alike. A knowledge base is a
few dozen entries per bot, so every active entry is scored (bounded by ``MAX_ENTRIES``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from django.db import connection
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce

from bots.intents import fold, tokens
from bots.models import BotConfig, KnowledgeEntry
from conversations.querycache import CompiledQuery

# Entries scored per query: far above a real FAQ, low enough to keep a turn fast.
MAX_ENTRIES = 500
# Below this an entry does not answer the question (0 to 1: the share of the query's weight
# the entry covers).
MIN_SCORE = 0.55
# Query words read: a question is a line or two; a pasted page must not cost a worker seconds.
MAX_TERMS = 20
MAX_QUERY_CHARS = 2000
TEXT_SEARCH_CONFIG = "portuguese_unaccent"
# PostgreSQL's rank (Portuguese stems) orders entries the words score about equally; it never
# makes a weak match an answer on its own, so both backends answer the same questions.
FTS_WEIGHT = 0.05


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """
    a o as os ao aos de da do das dos e em no na nos nas num numa um uma uns umas pra por pelo pela pelos pelas com
    que qual quais se sobre ate eu voce voces me mim meu minha meus minhas seu sua seus suas nosso nossa isso esse
    essa este esta estes essas esses aquele aquela ele ela eles elas lhe ja tambem so muito muita mais menos bem
    ser sao e foi era esta estou estao tem ter tenho temos ha posso pode podem poderia gostaria queria quero
    preciso saber informar informacao informacoes duvida oi ola bom boa dia tarde noite tudo obrigado favor por
    ai aqui la entao ne the of and or to in is are do you i what how faz fazem fazer fazemos trabalham trabalha
    trabalhar oferecem oferece realizam realiza atendem atende
    nao precisa chamar atendente atendentes humano robo bot
    vi vimos anuncio anuncios propaganda instagram insta facebook face tiktok post postagem story stories
    """
)
# (The last line: where a customer saw the business, "vi no anúncio do Instagram", says nothing
# about what they want to know, and customers coming from an ad always say it.)
# Words that say what kind of answer is wanted (a price) rather than about what: "valor da manicure"
# is about the manicure.
GENERIC = _words(
    "preco precos valor valores custa custam custo custos quanto quanta servico servicos ficaria sai tempo dura demora"
)
GENERIC_WEIGHT = 0.4
MONEY = re.compile(r"R\$\s?\d")
PRICE_WORDS = frozenset({"preco", "valor", "custa", "quanto"})
# A query word no entry knows weighs less than one that tells entries apart; less still when it
# looks like a verb ("posso levar meu filho?") than a thing ("comprar um cachorro").
UNKNOWN_WEIGHT = 0.7
UNKNOWN_VERB_WEIGHT = 0.35
VERB_ENDINGS = ("ar", "er", "ir", "ando", "endo", "indo", "ou", "aram", "eram", "iram", "amos", "emos", "imos")

# Words customers use for the same thing. A query word also finds its group's words (weighing
# a little less than the word itself).
SYNONYMS = [
    "preco precos valor valores custa custam custo custos quanto quanta cobram cobra investimento tabela",
    "horario horarios abre abrem aberto aberta abertos funciona funcionam funcionamento fecha fecham fechado "
    "expediente",
    "endereco onde fica ficam localizacao local localizado localizada chegar rua mapa",
    "estacionamento estacionar vaga vagas carro manobrista valet",
    "vaga vagas horario horarios disponivel disponibilidade encaixe agenda",
    "agendar agendamento agenda marcar marcacao reservar reserva disponibilidade encaixe hoje amanha segunda terca "
    "quarta quinta sexta sabado domingo",
    "pagamento pagamentos pagar pago pix cartao credito debito dinheiro parcelar parcela parcelas parcelado "
    "boleto aceita aceitam",
    "cancelar cancelamento desmarcar remarcar remarcacao faltar falta atraso atrasar",
    "sabado sabados fds",
    "domingo domingos fds",
    "produto produtos marca marcas linha vende vendem",
]
SYNONYM_WEIGHT = 0.7
_GROUPS: dict[str, set[str]] = {}
for _line in SYNONYMS:
    _group = set(_line.split())
    for _word in _group:
        _GROUPS.setdefault(_word, set()).update(_group)


@dataclass
class _Indexed:
    entry: KnowledgeEntry
    head: frozenset[str]  # title and keywords
    body: frozenset[str]
    rank: float = 0.0  # PostgreSQL full-text rank


def words(text: str) -> list[str]:
    """Content words of a text, as the matching compares them."""
    return [word for word in tokens(fold(text)) if word not in STOPWORDS and (len(word) > 1 or word.isdigit())]


@lru_cache(maxsize=65536)
def similarity(a: str, b: str) -> float:
    """How well word ``a`` (from the query) matches word ``b`` (from an entry), 0 to 1."""
    if a == b:
        return 1.0
    if a.isdigit() or b.isdigit():
        return 0.0
    short = min(a, b, key=len)
    # Plurals and verb forms: "escova"/"escovas", "abre"/"abrem", "progressiva"/"progressivo".
    prefix = 0
    for ca, cb in zip(a, b, strict=False):
        if ca != cb:
            break
        prefix += 1
    if len(short) >= 4 and prefix >= max(4, len(short) - 2):
        return 0.85
    # A typo keeps the first letter and about the length; anything else is another word (and
    # skipping it keeps a turn's scoring to a few milliseconds).
    if len(short) < 4 or a[0] != b[0] or abs(len(a) - len(b)) > 2:
        return 0.0
    matcher = SequenceMatcher(None, a, b)
    if matcher.real_quick_ratio() < 0.8 or matcher.quick_ratio() < 0.8:
        return 0.0
    ratio = matcher.ratio()
    # One wrong letter in a short word is another word ("franca"/"franja"); in a long one, a typo.
    return ratio * 0.8 if ratio >= (0.8 if len(short) >= 7 else 0.85) else 0.0


def _best(term: str, field: frozenset[str]) -> float:
    if term in field:
        return 1.0
    return max((similarity(term, word) for word in field), default=0.0)


def _exact(term: str, field: frozenset[str]) -> float:
    return 1.0 if term in field else 0.0


def _match(term: str, item: _Indexed) -> float:
    """How well one query word is answered by an entry (title and keywords count more)."""
    score = max(_best(term, item.head), 0.5 * _best(term, item.body))
    if score < 1.0:
        # Synonyms only as written: a typo of a synonym is too far from what was asked.
        for synonym in _GROUPS.get(term, ()):
            if synonym != term:
                found = max(_exact(synonym, item.head), 0.5 * _exact(synonym, item.body))
                score = max(score, SYNONYM_WEIGHT * found)
    return score


@lru_cache(maxsize=4096)
def _entry_words(title: str, keywords: str, body: str) -> tuple[frozenset[str], frozenset[str]]:
    """An entry's words (title and keywords; body), computed once per text a process sees."""
    head = words(title) + words(keywords.replace(",", " "))
    body_words = set(words(body))
    if MONEY.search(body):
        body_words |= PRICE_WORDS  # an entry quoting prices answers "quanto custa"
    return frozenset(head), frozenset(body_words)


def _index(entries: list[KnowledgeEntry]) -> list[_Indexed]:
    indexed = []
    for entry in entries:
        head, body = _entry_words(entry.title, entry.keywords, entry.body)
        indexed.append(_Indexed(entry=entry, head=head, body=body, rank=getattr(entry, "rank", 0.0)))
    return indexed


def _tsquery(terms: list[str]) -> str:
    """Any of the words, each as a prefix (stemmed by the configuration): 'escova:* | preco:*'."""
    safe = sorted({term for term in terms if re.fullmatch(r"[a-z0-9]+", term)})
    return " | ".join(f"{term}:*" for term in safe)


def _entries(config: BotConfig, terms: list[str]) -> list[KnowledgeEntry]:
    if connection.vendor == "postgresql" and (raw := _tsquery(terms)):
        return _RANKED(config.pk, raw)
    return list(KnowledgeEntry.objects.filter(bot=config, active=True)[:MAX_ENTRIES])


def _ranked(bot_id: int, raw: str) -> QuerySet[KnowledgeEntry]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    vector = (
        SearchVector("title", weight="A", config=TEXT_SEARCH_CONFIG)
        + SearchVector("keywords", weight="A", config=TEXT_SEARCH_CONFIG)
        + SearchVector("body", weight="C", config=TEXT_SEARCH_CONFIG)
    )
    query = SearchQuery(raw, search_type="raw", config=TEXT_SEARCH_CONFIG)
    return (
        KnowledgeEntry.objects.filter(bot_id=bot_id, active=True)
        .annotate(rank=Coalesce(SearchRank(vector, query), Value(0.0)))
        .order_by(F("rank").desc(), "position", "id")[:MAX_ENTRIES]
    )


# Building that query's full-text expressions cost more CPU than running it (every customer
# message of a bot asks it): compiled once per process (conversations/querycache.py).
_RANKED = CompiledQuery(_ranked, -987654321, "atendesample:*")


def scored(config: BotConfig, query: str) -> list[tuple[float, KnowledgeEntry]]:
    """Every active entry that answers ``query`` well enough, best first, with its score."""
    if len(query) > MAX_QUERY_CHARS:
        query = query[:MAX_QUERY_CHARS].rsplit(None, 1)[0]  # no half word at the cut
    terms = list(dict.fromkeys(words(query)))[:MAX_TERMS]
    if "quanto" in terms and "fica" in terms:
        terms.remove("fica")  # "quanto fica?" asks a price, "onde fica?" a place
    if not terms or config is None or config.pk is None:
        return []
    items = _index(_entries(config, terms))
    if not items:
        return []
    # Rare words tell entries apart ("escova"), common ones do not ("quanto", "custa").
    total = len(items)
    matches = {term: [_match(term, item) for item in items] for term in terms}
    weights = {}
    for term in terms:
        holding = sum(1 for found in matches[term] if found >= 0.85)
        weights[term] = math.log(1 + (total + 1) / (1 + holding))
        if term in GENERIC:
            weights[term] *= GENERIC_WEIGHT
        elif not any(found >= 0.5 for found in matches[term]):
            weights[term] *= UNKNOWN_VERB_WEIGHT if term.endswith(VERB_ENDINGS) else UNKNOWN_WEIGHT
    weight_sum = sum(weights.values())
    top_rank = max((item.rank for item in items), default=0.0) or 1.0
    results = []
    for index, item in enumerate(items):
        covered = sum(weights[term] * matches[term][index] for term in terms) / weight_sum
        if covered <= 0:
            continue
        # Ties ("escova" and "escova progressiva") go to the entry whose title says least else.
        focus = sum(1 for word in item.head if any(similarity(term, word) >= 0.85 for term in terms))
        score = covered + FTS_WEIGHT * (item.rank / top_rank) + 0.02 * focus / max(len(item.head), 1)
        item.entry.search_score = round(score, 4)
        if covered >= MIN_SCORE:
            results.append((score, item.entry))
    results.sort(key=lambda pair: (-pair[0], pair[1].position, pair[1].id))
    return results


def search(config: BotConfig, query: str, limit: int = 3) -> list[KnowledgeEntry]:
    """The bot's active knowledge entries that best answer ``query`` (at most ``limit``), best
    first; each carries its ``search_score``. Empty when nothing answers it."""
    if limit <= 0:
        return []
    return [entry for _, entry in scored(config, query)[:limit]]
