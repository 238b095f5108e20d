"""Rule-based handoff triggers, used by both engines before anything else.

``detect(text, config)`` says whether a customer's message asks for a person, or should get one:
a request for a person (in the many ways Brazilians write it), a complaint, a money dispute,
a cancellation of a contract or order, a health emergency at a clinic, frustration with the bot,
or one of the bot's configured topics and keywords.

How it reads a message: lowercase, accents folded, HTML tags dropped, letters repeated for
emphasis squeezed ("atendenteee"), WhatsApp abbreviations expanded ("vc", "pfv", "qro"), and
common typos of the words that matter corrected ("atendenti", "atendete"). The message is then
cut into clauses (punctuation, "mas", line breaks) so that a negation ("não precisa chamar
atendente") cancels only what follows it in its own clause, and "não quero robô, quero atendente"
still asks for a person.

The rules are Portuguese (and a little English) data on purpose: this is what customers write.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from bots.turn import HandoffRequest
from handoffs.models import Handoff

if TYPE_CHECKING:
    from bots.models import BotConfig

Reason = Handoff.Reason
Priority = Handoff.Priority

# A message longer than this is read only in part: the rules look at what a person types in a
# chat, and a pasted novel must not cost a worker seconds.
MAX_CHARS = 8000

# --- Normalisation -----------------------------------------------------------------------------

# WhatsApp spelling -> the word the rules are written with. Looked up on the token as typed and
# on the token with repeated letters squeezed ("vcs", "pfvvv", "naaao").
ABBREVIATIONS: dict[str, str] = {
    "vc": "voce",
    "vcs": "voces",
    "oce": "voce",
    "ce": "voce",
    "pfv": "por favor",
    "pf": "por favor",
    "pfvr": "por favor",
    "pfvor": "por favor",
    "porfa": "por favor",
    "porfavor": "por favor",
    "plz": "por favor",
    "pls": "por favor",
    "please": "por favor",
    "q": "que",
    "ke": "que",
    "qe": "que",
    "qro": "quero",
    "qero": "quero",
    "kero": "quero",
    "qer": "quero",
    "qr": "quero",
    "qria": "queria",
    "qeria": "queria",
    "keria": "queria",
    "n": "nao",
    "nao": "nao",
    "naum": "nao",
    "nn": "nao",
    "na": "na",
    "pra": "pra",
    "pro": "pra",
    "para": "pra",
    "p": "pra",
    "pa": "pra",
    "c": "com",
    "cm": "com",
    "cmg": "comigo",
    "tb": "tambem",
    "tbm": "tambem",
    "tmb": "tambem",
    "hj": "hoje",
    "kd": "cade",
    "ngm": "ninguem",
    "ningem": "ninguem",
    "algm": "alguem",
    "alguen": "alguem",
    "alguein": "alguem",
    "algen": "alguem",
    "atd": "atendente",
    "mt": "muito",
    "mto": "muito",
    "mta": "muito",
    "pq": "porque",
    "pk": "porque",
    "porq": "porque",
    "oq": "o que",
    "dnv": "de novo",
    "agr": "agora",
    "eh": "e",
    "ta": "esta",
    "tah": "esta",
    "vdd": "verdade",
    "msm": "mesmo",
    "obg": "obrigado",
    "obgd": "obrigado",
    "obgda": "obrigado",
    "obgdo": "obrigado",
    "obrigada": "obrigado",
    "brigado": "obrigado",
    "brigada": "obrigado",
    "vlw": "valeu",
    "blz": "beleza",
    "d": "de",
    "gnt": "gente",
    "qnto": "quanto",
    "qto": "quanto",
    "qnt": "quanto",
    "qnd": "quando",
    "qdo": "quando",
    "qndo": "quando",
    "ajd": "ajuda",
    "tds": "todos",
    "fzr": "fazer",
    "msg": "mensagem",
    "bot": "robo",
    "robot": "robo",
    "chatbot": "robo",
    "robozinho": "robo",
    "robos": "robo",
    "bots": "robo",
    "dont": "not",
    "doesnt": "not",
    "didnt": "not",
    "isnt": "not",
    "wont": "not",
    "cannot": "cant",
    "wpp": "whatsapp",
    "zap": "whatsapp",
    "whats": "whatsapp",
}

# The words typos are corrected to (only these: a typo of an everyday word stays a typo).
FUZZY_TARGETS = (
    "atendente",
    "atendentes",
    "humano",
    "pessoa",
    "alguem",
    "gerente",
    "reclamacao",
    "reclamar",
    "reembolso",
    "estorno",
    "cobranca",
    "cobrado",
    "cobraram",
    "cancelar",
    "cancelamento",
    "processar",
    "absurdo",
    "pessimo",
    "horrivel",
    "ridiculo",
    "sangramento",
    "sangrando",
    "desmaio",
    "desmaiei",
    "inchaco",
    "inchado",
    "alergica",
    "emergencia",
    "urgente",
    "supervisor",
    "funcionario",
    "responsavel",
    "verdade",
    "gostaria",
    "transferir",
    "recepcionista",
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Everyday words that look like a typo of a target but are not ("algum" is not "alguem").
KNOWN_WORDS = _words(
    """
    algum alguma alguns algumas pessoal pessoas atender atende atendeu atendem atendendo atendido
    atendida atendimento atendimentos atenda atendam processo processos verdades humanos humana
    cobrar cobra cobram cobrou cobrando cancela cancelo cancelou cancelada cancelado urgencia
    urgentes absurda absurdos gerentes inchada inchou desmaiou desmaiar alergico alergia
    reclamei reclama reclamou responsaveis funcionarios funcionaria supervisora estorna estornar
    estornado reembolsar reembolsado sangrou sangrar sangue horario horarios gostaria gostaria
    gostei gostou gosto transferencia transfere transferido transferida
    """
)

NEGATORS = frozenset({"nao", "nem", "sem", "nunca", "jamais", "nenhum", "nenhuma", "not", "never", "without"})
# "não consigo falar com ninguém" wants a person all the more: inability is not refusal.
NOT_REFUSALS = frozenset(
    {"consigo", "consegui", "conseguir", "consegue", "conseguindo", "aguento", "aguentou", "aguentando"}
)
# A negation's reach ends at these ("não quero robô, quero atendente").
NEGATION_BREAKS = frozenset({"robo", "mas", "porem", "entao", "but", "maquina"})

_TAGS = re.compile(r"<[^>]{0,200}>")
_TOKEN = re.compile(r"[a-z0-9]+")
_CLAUSE_SPLIT = re.compile(r"[\n\r.;!?,:()\[\]{}|/]+|\s(?:mas|porem|but)\s")
_RUNS = re.compile(r"([a-z])\1+")
_RUNS3 = re.compile(r"([a-z])\1{2,}")
_SLASHED = re.compile(r"(?<![a-z0-9])([cps])/")
_SLASH_WORDS = {"c": "com", "p": "pra", "s": "sem"}
_ENGLISH_NOT = re.compile(r"\b(ca|wo|do|does|did|is|are|was|were)n['’]t\b")


def fold(text: str) -> str:
    """Lowercase without accents: "Atenção, CAFÉ" -> "atencao, cafe"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _squeeze(token: str) -> str:
    return _RUNS.sub(r"\1", token)


def _distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent swaps count one), giving up past ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


_SQUEEZED_TARGETS = {_squeeze(word): word for word in FUZZY_TARGETS}
_SQUEEZED_ABBREVIATIONS = {_squeeze(key): value for key, value in ABBREVIATIONS.items()}
_TARGET_WORDS = frozenset(FUZZY_TARGETS)


@lru_cache(maxsize=8192)
def canonical(token: str) -> str:
    """One typed word as the rules spell it (may become two words: "pfv" -> "por favor")."""
    if token in ABBREVIATIONS:
        return ABBREVIATIONS[token]
    if token in KNOWN_WORDS or token in _TARGET_WORDS:
        return token
    squeezed = _squeeze(token)
    if squeezed in _SQUEEZED_ABBREVIATIONS:
        return _SQUEEZED_ABBREVIATIONS[squeezed]
    if squeezed in _SQUEEZED_TARGETS:
        return _SQUEEZED_TARGETS[squeezed]
    if squeezed in KNOWN_WORDS:
        return squeezed
    if len(token) >= 5 and not token.isdigit():
        best, best_distance = "", 9
        for key, word in _SQUEEZED_TARGETS.items():
            if key[0] != squeezed[0]:
                continue
            limit = 1 if len(key) <= 8 else 2
            found = _distance(squeezed, key, limit)
            if found <= limit and found < best_distance:
                best, best_distance = word, found
        if best:
            return best
    return _RUNS3.sub(r"\1", token)


def tokens(text: str) -> list[str]:
    """The canonical words of a (folded) piece of text."""
    words: list[str] = []
    for raw in _TOKEN.findall(text):
        words.extend(canonical(raw).split())
    return words


@dataclass
class Reading:
    """A message as the rules read it."""

    raw: str
    clauses: list[str]  # canonical words joined by single spaces, one string per clause
    words: list[str]
    letters: int
    upper: int
    exclamations: int
    questions: int
    angry_faces: int

    @property
    def joined(self) -> str:
        return " ".join(self.words)

    @property
    def shouting(self) -> bool:
        return self.letters >= 10 and self.upper >= 0.7 * self.letters


def read(text: str) -> Reading:
    raw = (text or "")[:MAX_CHARS]
    raw = _TAGS.sub(" ", raw)
    letters = sum(1 for c in raw if c.isalpha())
    upper = sum(1 for c in raw if c.isupper())
    folded = _ENGLISH_NOT.sub(lambda m: m.group(1) + " not", fold(raw).replace("can't", "cant"))
    # "c/ atendente", "p/ alguém", "s/ dor": the slash would otherwise cut the clause.
    folded = _SLASHED.sub(lambda m: _SLASH_WORDS[m.group(1)] + " ", folded)
    clauses = []
    words: list[str] = []
    for piece in _CLAUSE_SPLIT.split(folded):
        clause = tokens(piece)
        if clause:
            clauses.append(" ".join(clause))
            words.extend(clause)
    return Reading(
        raw=raw,
        clauses=clauses,
        words=words,
        letters=letters,
        upper=upper,
        exclamations=raw.count("!"),
        questions=raw.count("?"),
        angry_faces=sum(raw.count(face) for face in ("😡", "🤬", "😠", "😤", "🖕")),
    )


# --- Matching helpers ----------------------------------------------------------------------------


def _rx(pattern: str) -> re.Pattern[str]:
    # Patterns are written over canonical words; (?<!\S) and (?!\S) make every match whole words.
    return re.compile(r"(?<!\S)(?:" + pattern + r")(?!\S)")


def _negated(clause: str, start: int) -> bool:
    """Is there a negation in the few words before ``start`` (a character offset) that reaches it?"""
    before = clause[:start].split()[-4:]
    for index in range(len(before) - 1, -1, -1):
        word = before[index]
        if word in NEGATION_BREAKS:
            return False
        if word in NEGATORS:
            following = before[index + 1] if index + 1 < len(before) else ""
            return following not in NOT_REFUSALS
    return False


def _find(
    patterns: list[re.Pattern[str]],
    reading: Reading,
    *,
    negatable: bool = True,
    skip: Callable[[str, str], bool] | None = None,
) -> str:
    """The first clause text matched by any pattern without a negation before it, or "".
    ``skip(clause, matched)`` may reject a match that only mentions the thing."""
    for clause in reading.clauses:
        for pattern in patterns:
            for match in pattern.finditer(clause):
                if negatable and _negated(clause, match.start()):
                    continue
                if skip is not None and skip(clause, match.group(0)):
                    continue
                return match.group(0)
    return ""


def _any(words: str) -> str:
    return "(?:" + "|".join(words.split()) + ")"


# --- A request for a person -------------------------------------------------------------------------

# Who a customer asks to talk to.
PERSON = _any(
    "atendente atendentes humano humana humanos pessoa pessoas alguem funcionario funcionaria gerente "
    "supervisor supervisora responsavel dono dona operador operadora consultor consultora "
    "recepcionista recepcao secretaria moca moco rapaz vendedor vendedora proprietario proprietaria "
    "agente representante chefe patrao patroa human humans person agent someone somebody representative operator "
    "manager "
    "people staff sac suporte"
)
# ...and, after "falar com", also the professionals themselves.
PERSON_TALK = (
    "(?:"
    + PERSON
    + "|"
    + _any(
        "atendimento financeiro comercial setor departamento administracao medico medica doutor doutora dentista "
        "dra dr profissional gente pessoal especialista"
    )
    + ")"
)
ARTICLES = r"(?:(?:o|a|os|as|um|uma|uns|umas|algum|alguma|seu|sua|teu|tua|outro|outra|the|an|a|some|real|de|da|do|"
ARTICLES += r"verdade|real|mesmo|mesma|ja|agora|logo|urgente|direto|diretamente|por favor)\s)*"
TALK = _any("falar fala falo conversar converso papear contato contatar contactar comunicar talk speak chat")
WANT = (
    _any(
        "quero queria gostaria preciso precisava prefiro exijo solicito pode poderia podia consigo cade passa passar "
        "passe transfere transferir transfira transferencia encaminha encaminhar encaminhe chama chamar chame chamem "
        "manda mande coloca coloque colocar conecta conectar liga chamo want need get connect transfer put"
    )[:-1]
    + "|tem como|da pra|dava pra)"
)
WANT_FILLERS = r"(?:(?:me|eu|de|o|a|um|uma|com|pra|por|favor|falar|algum|alguma|ai|logo|agora|ja|so|outro|"
WANT_FILLERS += (
    r"outra|seu|sua|voce|voces|pode|poderia|urgente|direto|ser|atendido|atendida|com|to|with|me|through|i|an|"
)
WANT_FILLERS += r"the|real|talk|speak|chat|help|from|some)\s){0,5}"

REQUEST_PATTERNS = [
    _rx(TALK + r"\s(?:(?:com|por|pela|pelo|pra|a|c|to|with)\s)?" + ARTICLES + PERSON_TALK),
    _rx(WANT + r"\s" + WANT_FILLERS + PERSON),
    _rx(r"(?:quero|queria|preciso|want|need)\s(?:de\s)?(?:uma\s)?gente"),
    _rx(r"ser atendid[oa]s?\s(?:(?:por|pela|pelo|com)\s)" + ARTICLES + PERSON),
    _rx(
        r"(?:pessoa|pessoas|gente|alguem|atendente|humano|ser humano|atendimento)\s(?:de\s)?(?:verdade|real|reais|viva)"
    ),
    # "me transfere", "transfere aí pfv": nothing else to transfer in a chat with the bot.
    _rx(r"(?:me\s)?(?:transfere|transfira|transferir|encaminha|encaminhe)(?:\s(?:ai|logo|agora|por favor|ja|me))*$"),
    _rx(
        r"(?:nao|nem)\s(?:consigo|consegui|to conseguindo|estou conseguindo)\s(?:falar|contato|contatar|"
        r"conversar|ser atendid[oa])\s(?:com\s)?(?:ninguem|nenhum atendente|nenhuma pessoa)|"
        r"(?:nao tem|nao ha|sem)\sninguem\s(?:pra|para)\s(?:falar|conversar|me atender|atender)"
    ),
    _rx(r"(?:atendimento|atendente|suporte|contato)\s(?:humano|humanizado|real)"),
    _rx(r"ser humano|carne e osso|real (?:person|human|people)|human (?:being|agent|please|por favor)|live agent"),
    _rx(
        r"(?:tem|ha|existe|is there|there|any)\s(?:(?:algum|alguma)\s)?(?:alguem|anyone|anybody|someone|somebody)"
        r"(?:\s(?:ai|aqui|ae|online|atendendo|real|humano|there|here|alive|ai que|ai pra)|$)"
    ),
    _rx(r"tem\s(?:(?:um|uma|algum|alguma)\s)?(?:atendente|humano|pessoa)\s(?:ai|aqui|online|disponivel|atendendo)"),
    _rx(r"(?:nao\s)?(?:tem\s|tenha\s|ha\s)?ninguem (?:ai|aqui|ae|online|atendendo)"),
    # "Um atendente pode me ajudar?", "preciso que um humano me ajude".
    _rx(
        PERSON + r"\s(?:(?:pode|poderia|podia|consegue|possa|vai)\s)?(?:me\s)(?:ajudar|ajude|ajuda|atender|atenda|"
        r"responder|responda|ligar|ligue|retornar|retorne|chamar|chame)"
    ),
    _rx(r"(?:transferid[oa]|encaminhad[oa]|passad[oa])\s(?:(?:pra|a|ao|com)\s)" + ARTICLES + PERSON),
    _rx(
        r"alguem\s(?:ai|ae|aqui|online|vivo|real|por favor|help)|"
        r"alguem\s(?:(?:pode|poderia|consegue|podia|pra|que pode|que possa|que consiga)\s)?(?:me\s)?"
        r"(?:ajuda|ajude|ajudar|atende|atenda|atender|responde|responda|responder|fala|falar|conversar)"
    ),
    _rx(
        r"(?:anyone|anybody|someone|somebody)\s(?:there|here|real|help|please|alive|available)|"
        r"(?:anyone|anybody|someone|somebody)\s(?:i|we)\s(?:can|could)\s(?:talk|speak|chat)"
    ),
    _rx(
        r"(?:me|pode me|poderia me|podem me)\s(?:liga|ligar|ligue|ligam|telefona|telefonar|retorna|retornar)|"
        r"(?:liga|ligar|ligue|telefona)\s(?:pra|pro)\s(?:mim|meu)|call me"
    ),
    _rx(
        r"nao\s(?:quero|aguento|gosto de|gosto|vou)\s(?:mais\s)?(?:(?:falar|conversar|ser atendid[oa])\s)?"
        r"(?:(?:com|c|por|pelo|pela)\s)?"
        r"(?:o\s|um\s|uma\s|esse\s|essa\s)?"
        r"(?:robo|maquina|assistente virtual|robo virtual)"
    ),
    _rx(
        r"(?:chega|cansei|odeio|detesto|sem)\s(?:de\s)?(?:(?:falar|conversar)\s(?:com\s)?)?(?:(?:o|um|esse|com)\s)?robo"
    ),
    _rx(r"not\s(?:a\s)?(?:robo|machine)|stop (?:the )?robo|hate (?:this )?robo"),
]
# "O atendimento humano de vocês é ótimo", "falar com a atendente foi ótimo": praise or a story,
# not a request, unless the customer also asks ("quero falar com a atendente que foi ótima").
DESCRIBING = _words(
    """foi foram era eram otimo otima otimos excelente maravilhoso maravilhosa gentil gentis educado educada
    atencioso atenciosa atenciosos simpatico simpatica legal incrivel perfeito perfeita elogiar elogio elogios
    agradecer agradeco parabens querida querido amei adorei recomendo melhor nota great nice kind helpful was"""
)
ASKING = _words(
    """quero queria gostaria preciso precisava prefiro pode poderia podem cade chama chame passa passe transfere
    transferir encaminha coloca favor want need please connect transfer"""
)


def _only_describing(clause: str, matched: str) -> bool:
    words = set(clause.split())
    return bool(words & DESCRIBING) and not words & ASKING


# These, with nothing else but fillers, are a request on their own: "atendente!!", "humano pfv".
ALONE_PERSON = _words(
    "atendente atendentes humano humana pessoa alguem gerente supervisor operador representative human "
    "agent person operator someone atendimento"
)
ALONE_FILLERS = _words(
    """oi ola ei alo opa hey hi hello bom boa dia tarde noite por favor urgente ai ae aqui agora ja logo um uma o a
    quero queria preciso eu me de verdade real so pessoa humano humana please sim help ajuda socorro cade falar
    com pra favor voce voces online algum alguma que e tem ha disponivel livre"""
)


GREETINGS = _words("oi oie ola ei alo opa hey hi hello bom boa dia tarde noite tudo bem e ai")


# "Posso falar com a Juliana?": a person of the business, by name (read on the text as typed,
# where a name has its capital letter).
NAMED_PERSON = re.compile(
    r"\b(?:posso|quero|queria|gostaria de|preciso|d[aá] pra|tem como|consigo|poderia)\s+(?:falar|conversar)\s+"
    r"(?:com|c/)\s+(?:(?:a|o)\s+)?(?:(?:dra?|doutora?)\.?\s+)?([A-ZÀ-Ý][a-zà-ÿ]{2,})",
    re.IGNORECASE,
)
NOT_NAMES = _words("voce voces vc vcs meu minha seu sua alguem ninguem ele ela eles elas senhor senhora")


def _named_person(reading: Reading) -> str:
    for match in NAMED_PERSON.finditer(reading.raw):
        name = match.group(1)
        if not name[0].isupper() or fold(name) in NOT_NAMES:
            continue
        before = tokens(fold(reading.raw[: match.start()]))[-3:]
        if set(before) & NEGATORS:
            continue
        return fold(match.group(0))
    return ""


def _alone_request(reading: Reading) -> str:
    words = reading.words
    if not words or len(words) > 8:
        return ""
    allowed = ALONE_FILLERS | ALONE_PERSON
    if not any(word in ALONE_PERSON for word in words) or not all(word in allowed for word in words):
        return ""
    # "atendimento" alone is a topic ("atendimento?"), with "humano"/"pessoa" it is a request.
    persons = [w for w in words if w in ALONE_PERSON]
    if persons == ["atendimento"]:
        return ""
    if any(word in NEGATORS for word in words):
        return ""
    # "Bom dia, atendente!" greets whoever answers; "oi, alguém?" asks whether anyone is there.
    others = [w for w in words if w not in ALONE_PERSON]
    if others and all(w in GREETINGS for w in others) and "alguem" not in persons:
        return ""
    return " ".join(words)


# --- Complaints ------------------------------------------------------------------------------------------

COMPLAINT_PATTERNS = [
    _rx(
        _any(
            "absurdo absurda absurdos pessimo pessima pessimos horrivel horriveis ridiculo ridicula horroroso "
            "horrorosa decepcionante policia delegacia "
            "vergonhoso vergonhosa descaso desrespeito palhacada lamentavel inadmissivel inaceitavel revoltante "
            "revoltado revoltada indignado indignada insatisfeito insatisfeita decepcionado decepcionada "
            "decepcao incompetente incompetentes incompetencia enganacao enganaram enganado enganada enganosa "
            "golpe golpista golpistas fraude procon reclameaqui ouvidoria advogado advogada juizado "
            "terrible awful horrible worst ridiculous unacceptable disgusting scam fraud lawyer sue "
            "complaint complain"
        )
    ),
    _rx(
        r"reclamacao|reclamacoes|reclamar|reclamando|reclamo|reclame aqui|"
        r"(?:registrar|fazer|abrir|deixar)\s(?:uma\s)?queixa|"
        r"(?:que|uma|e uma|isso e uma)\svergonha"
    ),
    _rx(
        r"(?:vou|vamos|irei|quero)\s(?:(?:te|voces|voce|a|o|essa|esse|vos)\s)?(?:processar|denunciar|expor|acionar|"
        r"entrar na justica)|processo judicial|pequenas causas|na justica|denuncia"
    ),
    _rx(
        r"falta de (?:respeito|educacao|profissionalismo|consideracao)|"
        r"(?:tao |muito |super |pessimamente )?mal (?:educado|educada|atendido|atendida|tratado|tratada)|"
        r"(?:foi|foram|e|sao|muito|super)\s(?:muito\s)?(?:grosso|grossa|grossos|grosseir[oa]s?|arrogantes?|rude)|"
        r"grosseria|"
        r"pior (?:atendimento|servico|lugar|empresa|salao|clinica)|nunca mais (?:volto|piso|compro|venho)|"
        r"nao (?:volto|venho|compro) (?:mais|nunca)|nao recomendo|nao gostei|nao gostou|nao fiquei satisfeit[oa]|"
        r"(?:ficou|ficaram|esta|estou) (?:horrivel|pessimo|pessima|uma merda|um lixo|torto|torta|manchad[oa])|"
        r"estragaram|queimaram|arruinaram|arruinou|cortaram errado|"
        r"(?:estragou|queimou|manchou|detonou|detonaram)\s(?:o\s|a\s)?(?:meu|minha)"
    ),
    _rx(
        _any(
            "merda porra caralho puta putaria pqp vsf fdp foda foder fodase fudeu desgraca desgracado desgracada "
            "lixo porcaria bosta burro burra burros burras idiota idiotas imbecil imbecis otario otaria otarios "
            "babaca cretino cretina "
            "vagabundo vagabunda safado safada ladrao ladroes ladra roubo roubaram wtf shit fuck fucking"
        )
    ),
    _rx(
        r"que (?:saco|droga|raiva|odio|merda|absurdo)|furios[oa]|com raiva|"
        r"(?:estou|to|esta|fiquei|fico)\s(?:muito\s|bem\s|super\s)?(?:puto|puta|irritad[oa]|chatead[oa]|brav[oa]|"
        r"nervos[oa]|revoltad[oa])"
    ),
]
COMPLAINT_PATTERNS += [
    # "Vocês são muito ruins", "serviço porco".
    _rx(
        r"(?:voces sao|voces|servico|atendimento|experiencia|empresa|salao|clinica|loja)\s"
        r"(?:(?:e|sao|foi|foram|esta|ta|muito|tao|bem|super|de voces|daqui|desse|dessa|mais)\s){0,3}"
        r"(?:ruim|ruins|porco|porca|fraco|fraca|lamentavel|uma droga|uma bosta)|boletim de ocorrencia"
    ),
    # Left waiting.
    _rx(
        r"esperando\s(?:uma\s|a\s|o\s|um\s)?(?:resposta|retorno|ha|faz|desde|ate agora|muito|demais)|"
        r"ninguem\s(?:me\s)?(?:respondeu|retornou|atendeu|deu retorno)|ate agora (?:nada|nenhuma resposta|ninguem)|"
        r"(?:demora|demoram|demorando|demorou|demoraram)\s(?:muito|demais|tanto|uma eternidade)|"
        r"sem (?:resposta|retorno) (?:ate agora|ha|desde)|"
        r"ja mandei (?:\d+|varias|duas|tres|um monte de) (?:mensagens|mensagem|msgs)|"
        r"nunca (?:fui|fomos|me senti) (?:tao|muito) (?:mal|desrespeitad[oa]|humilhad[oa])|nunca vi tanto descaso"
    ),
    # An order gone wrong.
    _rx(
        r"(?:pedido|encomenda|produto|entrega|compra|mercadoria)\s(?:\S+\s){0,2}"
        r"(?:nao chegou|nao veio|nao foi entregue|veio errad[oa]|veio quebrad[oa]|veio com defeito|"
        r"chegou quebrad[oa]|chegou errad[oa]|com defeito|chegou aberto|extraviad[oa])"
    ),
    # A result gone wrong.
    _rx(
        r"(?:me deu|deu|causou|provocou|me causou)\s(?:uma\s|muita\s)?"
        r"(?:alergia|reacao|irritacao|coceira|queda|manchas?|queimadura|ferida)|"
        r"(?:nao|nem)\s(?:durou|dura|segurou|pegou|funcionou|fez efeito)\s(?:nem|nada|uma|um|\d)"
    ),
]
AFTER = _words("depois apos")
RESULT_PROBLEMS = _words(
    """caiu caindo queimou queimado queimada manchou manchas manchado manchada alergia ardendo ardeu coceira estragou
    estragado estragada quebrou quebrando elastico emborrachado horrivel pessimo pessima feio feia torto torta
    ferida feridas descascando"""
)


def _result_problem(reading: Reading) -> str:
    """ "Meu cabelo caiu depois da progressiva": a complaint about a service's result."""
    for clause in reading.clauses:
        words = set(clause.split())
        if words & AFTER and words & RESULT_PROBLEMS and not words & {"normal", "pode", "risco", "evitar", "como"}:
            return clause
    return ""


# Without negation: an insult is an insult even after "não" ("não passa de um lixo").
COMPLAINT_UNNEGATABLE = {4}
# Directed at the bot these are frustration, not a complaint about the business.
BOT_INSULTS = _rx(
    r"(?:robo|voce|vc|assistente|maquina)\s(?:e\s)?(?:(?:muito|mais|um|uma|mesmo|super)\s)*"
    r"(?:burro|burra|idiota|inutil|imbecil|lixo|ruim|estupido|estupida|retardado|horrivel|pessimo|porcaria|lerdo|"
    r"lerda|besta|tonto|tonta|doido|maluco|uma merda|um lixo|uma porcaria)|"
    r"(?:burro|idiota|inutil|imbecil|estupido|lixo|porcaria|merda)\s(?:de\s|desse\s|dessa\s|esse\s|essa\s)?"
    r"(?:robo|assistente|maquina)|(?:useless|stupid|dumb) robo|robo (?:useless|stupid|dumb)"
)

NEGATIVE_CUES = _words(
    """nao nunca ninguem nada ainda ate cade esperando espera esperar demora demorando demorou absurdo
    responde respondem atende atendem horas dias problema erro errado resolver resolve resolvam urgente
    dinheiro resposta respostas agora porque hein palhacada vergonha"""
)
POSITIVE_CUES = _words(
    """obrigado valeu amei adorei otimo otima parabens feliz perfeito perfeita lindo linda maravilhoso maravilhosa
    top show incrivel sucesso bom boa oi ola feliz natal ano beleza gratidao thanks love great"""
)


def _shouting_complaint(reading: Reading) -> str:
    words = set(reading.words)
    if words & POSITIVE_CUES:
        return ""
    if reading.angry_faces >= 2 or "🤬" in reading.raw:
        return "angry emoji"
    # Capitals and "!!!" alone are also how some people write "QUERO MARCAR!!!": anger needs a
    # word of complaint beside them (waiting, nobody, nothing, still...).
    if not words & NEGATIVE_CUES:
        return ""
    if reading.shouting and len(reading.words) >= 3 and reading.exclamations >= 2:
        return "shouting"
    if reading.exclamations >= 3 and len(reading.words) >= 2:
        return "exclamations"
    return ""


# --- Money disputes ----------------------------------------------------------------------------------------

BILLING_PATTERNS = [
    _rx(
        r"cobranca\s(?:(?:foi|veio|esta|ta|que|e|eu|muito)\s)*(?:indevida|errada|duplicada|dupla|em dobro|a mais|"
        r"abusiva|estranha|repetida|incorreta|nao reconheco|que nao fiz|duas vezes|2 vezes)"
    ),
    _rx(
        r"(?:cobrad[oa]s?|cobraram|cobrou|cobrando|debitad[oa]|debitaram|debitou|descontaram|descontou|"
        r"descontad[oa]|passaram)\s(?:(?!em\s)\S+\s){0,4}"
        r"(?:duas vezes|2 vezes|2x|duas|tres vezes|dobrado|dobrada|em dobro|a mais|errado|errada|indevidamente|"
        r"duplicado|duplicada|duplo|repetido|twice|sem autorizacao|sem eu)"
    ),
    # "paguei em 2x" is paying in instalments, not twice.
    _rx(
        r"(?:paguei|pagou|pagamos)\s(?:(?!em\s)\S+\s){0,4}"
        r"(?:duas vezes|2 vezes|dobrado|em dobro|a mais|duplicado|repetido|twice)"
    ),
    _rx(r"(?:me|nos)\s(?:cobraram|cobrou)|cobraram de novo|cobrou de novo"),
    _rx(r"pagamento\s(?:(?:foi|esta|veio)\s)?(?:duplicado|em dobro|duas vezes|repetido|indevido)"),
    _rx(
        r"estorno|estornar|estornem|estorne|estornado|estornada|estornaram|reembolso|reembolsar|reembolsem|reembolse|"
        r"reembolsad[oa]|chargeback|refund|refunded|money back|charged twice|double charged|overcharged"
    ),
    _rx(
        r"devolv\w*\s(?:(?:o|a|meu|minha|o meu|a minha|nosso|meus)\s)*(?:dinheiro|grana|valor|pagamento|pix)|"
        r"(?:dinheiro|valor|grana|sinal)\s(?:\S+\s){0,3}de volta|quero (?:meu|o meu) dinheiro"
    ),
    _rx(
        r"contest\w*\s(?:(?:a|o|essa|esse|uma|um)\s)?(?:cobranca|compra|fatura|pagamento|cartao|valor)|"
        r"(?:valor|fatura|boleto|conta)\s(?:veio\s|esta\s|ta\s)?(?:errad[oa]|indevid[oa]|incorret[oa]|a mais)|"
        r"nao reconheco\s(?:(?:essa|esta|a|o|esse|este)\s)?(?:cobranca|compra|valor|debito|pagamento)|"
        r"paguei\s(?:e|mas)\s(?:nao|ninguem)|"
        r"(?:fiz|mandei|enviei|paguei)\s(?:o\s|a\s)?(?:pix|pagamento|transferencia|deposito)\s(?:\S+\s){0,3}"
        r"(?:nao|ninguem)\s(?:\S+\s)?(?:confirm|baix|caiu|receb|apareceu|identific)\w*|"
        r"cobrad[oa]\s(?:\S+\s){0,3}(?:diferente|errad[oa]|a mais)|"
        r"(?:valor|preco)\s(?:\S+\s){0,3}diferente d[oa] (?:combinado|anunciado|informado|site|orcamento|tabela)"
    ),
]
BILLING_QUESTIONS = _rx(
    r"(?:politica|politicas|regras?)\s(?:de|do|da|para)\s(?:reembolso|estorno|troca)|"
    r"reembolso\s(?:(?:do|de|pelo|pela|no|na|com)\s)?(?:o\s|a\s|meu\s|minha\s)?(?:convenio|plano|seguro)|"
    r"(?:recibo|nota fiscal|nota|nf)\s(?:(?:pra|de|para o)\s)?reembolso"
)


# "Como funciona o reembolso?" asks about the rules; "quero o reembolso" disputes money.
REFUND_WORDS = ("estorn", "reembols", "refund", "chargeback")
DISPUTE_CUES = _words(
    """quero queria preciso meu minha meus cade ainda paguei pedir pedi peco solicitar solicito solicitei exijo
    devolve devolvam receber recebi nao ja caiu want my still need"""
)


def _billing_question(clause: str, matched: str) -> bool:
    return matched.startswith(REFUND_WORDS) and not set(clause.split()) & DISPUTE_CUES


# --- Cancellations -------------------------------------------------------------------------------------------

CANCEL = _rx(
    r"cancel\w*|desmarc\w*|remarc\w*|rescindir|rescisao|rescindo|encerrar (?:minha |a )?conta|"
    r"encerrar (?:o |meu )?contrato|desistir d[aoe]|desisto d[aoe]|unsubscribe|quero sair do (?:plano|programa)|"
    r"nao quero mais (?:o |a |meu |minha )?(?:plano|pacote|assinatura|servico|produto|pedido|compra|contrato)"
)
CONTRACT_WORDS = _words(
    """plano planos assinatura assinaturas contrato contratos pedido pedidos compra compras pacote pacotes mensalidade
    mensalidades matricula servico servicos conta contas cartao produto produtos encomenda encomendas order orders
    subscription plan contract account membership fidelidade combo cadastro seguro convenio boleto entrega"""
)
APPOINTMENT_WORDS = _words(
    """horario horarios agendamento agendamentos agenda consulta consultas sessao sessoes marcacao hora visita retorno
    avaliacao reserva reservas atendimento appointment booking desmarcar remarcar remarcacao desmarcacao dia amanha
    hoje semana procedimento exame exames aula aulas corte escova manicure"""
)
POLICY_WORDS = _words(
    """politica politicas regra regras taxa taxas multa antecedencia prazo prazos funciona como posso pode policy
    quanto tempo"""
)


def _cancellation(reading: Reading) -> str:
    for clause in reading.clauses:
        for match in CANCEL.finditer(clause):
            if _negated(clause, match.start()):
                continue
            word = match.group(0)
            words = set(clause.split())
            if words & CONTRACT_WORDS or word.startswith(("rescin", "encerrar", "desist", "unsub", "quero sair")):
                return word
            if word.startswith("nao quero mais"):
                return word
            if word.startswith(("desmarc", "remarc")) or words & APPOINTMENT_WORDS:
                continue  # an appointment: the knowledge base explains how (and a person can be asked)
            if words & POLICY_WORDS:
                continue  # a question about the rules, answered from the knowledge base
            return word
    return ""


# --- Health emergencies (clinics) ----------------------------------------------------------------------------

EMERGENCY_PATTERNS = [
    _rx(
        r"dor\s(?:(?:muito|mais|bem|tao|tambem|de|no|na|nos|nas|[a-z]+)\s){0,3}(?:forte|fortissima|insuportavel|intensa|horrivel|terrivel|aguda|"
        r"absurda|demais)|(?:muita|muitas|forte|fortes)\s(?:dor|dores)|dor no peito|dores? fortes?|"
        r"(?:nao|nem)\s(?:aguento|suporto)\s(?:de\s)?dor|morrendo de dor|chest pain|severe pain"
    ),
    _rx(
        r"sangramento|sangrando|sangrou|sangra muito|muito sangue|nao (?:para|pra) de sangrar|hemorragia|"
        r"(?:saindo|saiu|escorrendo)\s(?:muito\s)?sangue|vomit\w* sangue|bleeding"
    ),
    _rx(
        r"falta de ar|sem ar|(?:nao|mal)\s(?:consigo|consegue|esta conseguindo|to conseguindo|estou conseguindo)\s"
        r"respirar|dificuldade (?:pra|de|em) respirar|respirar com dificuldade|sufocando|cant breathe|"
        r"short(?:ness)? of breath|garganta fechando"
    ),
    _rx(
        r"(?:passando|passei|passou)\s(?:muito\s)?mal|mal estar|(?:me\s)?sentindo\s(?:muito\s)?mal|"
        r"(?:apareceu|apareceram|surgiu|surgiram|formou|formaram|estou com|to com|fiquei com|esta com|ficou com)\s"
        r"(?:\S+\s){0,2}(?:bolha|bolhas|ferida|feridas|queimadura|queimaduras|hematoma|hematomas)"
    ),
    _rx(r"desmai\w*|perdi os sentidos|perdeu os sentidos|convuls\w*|infarto|avc|derrame|fainted|seizure"),
    _rx(
        r"reacao\s(?:(?:alergica|forte|grave|muito forte)\s?)+|alergia\s(?:forte|grave|muito forte)|"
        r"(?:me deu|deu|tive|estou com|to com|estou tendo|to tendo)\s(?:uma\s)?(?:alergia|reacao)|"
        r"choque anafilatico|anafilaxia|allergic reaction"
    ),
    _rx(r"inchaco|inchad[oa]s?|inchou|inchando|swelling|swollen"),
    _rx(
        r"febre\s(?:(?:muito|bem|de)\s)?(?:alta|altissima|forte|39|40|41)|high fever|"
        r"(?:39|40|41)\s(?:graus|de febre)"
    ),
    _rx(
        r"emergencia|socorro|urgencia medica|emergency|infeccionou|infeccionado|infeccionada|saindo pus|com pus|"
        r"necrose|queimadura grave"
    ),
]
# These are serious only with urgency beside them ("urgente, estou com dor").
SYMPTOMS = _words(
    """dor dores doendo doi sangue sangrou febre vomito vomitando vomitei alergia alergico alergica tontura tonto
    tonta manchas mancha queimou queimadura ardendo ardencia coceira vermelho vermelha bolhas bolha roxo roxa"""
)
TREATMENT_QUESTIONS = _rx(
    r"(?:tratamento|tratamentos|tratar|tratam|trata|drenagem|procedimento|ajuda|resolve|serve|bom|boa|indicado|"
    r"indicada|reduzir|diminuir|diminui|reduz|alivia|aliviar|remedio|massagem)\s(?:(?:pra|de|o|a|com|contra|no|na|"
    r"do|da)\s)*(?:inchaco|inchado|inchada|dor|dores|febre|alergia|manchas|celulite|retencao)"
)
EMERGENCY_QUESTIONS = _rx(
    r"(?:qual|quanto|preco|valor)\s(?:\S+\s){0,4}(?:emergencia|urgencia)|"
    r"(?:(?:voce|voces)\s)?(?:atende|atendem|tem|faz|fazem|aceita|aceitam)\s(?:(?:atendimento|consulta)\s)?(?:de\s)?"
    r"(?:emergencia|urgencia)"
)


def _emergency(reading: Reading) -> str:
    words = set(reading.words)
    if EMERGENCY_QUESTIONS.search(reading.joined):
        return ""
    # "drenagem para inchaço?" asks about a treatment; only the other clauses can be an emergency.
    asking = [clause for clause in reading.clauses if not TREATMENT_QUESTIONS.search(clause)]
    found = _find(EMERGENCY_PATTERNS, Reading(reading.raw, asking, reading.words, 0, 0, 0, 0, 0))
    if found:
        return found
    if words & {"urgente", "urgencia", "emergencia"} and any(
        word in SYMPTOMS and not _negated_word(reading, word) for word in words
    ):
        return "urgent symptom"
    return ""


def _negated_word(reading: Reading, word: str) -> bool:
    for clause in reading.clauses:
        match = re.search(r"(?<!\S)" + word + r"(?!\S)", clause)
        if match:
            return _negated(clause, match.start())
    return False


# --- Frustration with the bot --------------------------------------------------------------------------------

FRUSTRATION_PATTERNS = [
    _rx(
        r"voce nao (?:entende|entendeu|sabe|ajuda|serve|resolve|esta entendendo|ta entendendo|me entende|responde)|"
        r"nao (?:entende|entendeu|entendem) nada|nao (?:esta|ta) entendendo|nao entende o que|"
        r"nao (?:serve|ajuda|ajudou|resolve|resolveu|adianta) (?:pra|em|de) nada|nao ajuda em nada|"
        r"(?:ja|eu ja) (?:falei|disse|expliquei|perguntei|respondi)(?!\s(?:com|pra|pro|a|o|ao|na|no))|"
        r"(?:pela|ja e a) (?:segunda|terceira|quarta|quinta|\d+a?) vez|repetindo (?:a mesma coisa|de novo)|"
        r"(?:segunda|terceira|quarta|quinta|\d+a?) vez que (?:eu )?(?:pergunt|pec|pe[cç]o|fal|dig|mand|repit|tent|"
        r"escrev|explic)\w*|de novo isso|mesma coisa de novo|"
        r"(?:so|sempre) (?:responde|repete|manda) (?:a mesma|isso|o mesmo)|nao foi (?:isso|o) que (?:eu )?"
        r"(?:perguntei|pedi|falei|disse)|nao era isso|nao (?:e|era) isso que (?:eu )?(?:perguntei|pedi|quero)|"
        r"ninguem (?:vai\s)?(?:me\s)?(?:atende|atender|responde|responder|ajuda|ajudar|resolve|resolver)|"
        r"cansei|af+|afs|affs|"
        r"you (?:not|dont) understand|not helpful|useless|this is not what i"
    ),
]
CONFUSED = _rx(r"nao entendi|nao (?:e|era|foi) isso|como assim|hein|ue|nada a ver")


def confused(text: str) -> bool:
    """Does the customer say the bot's answer missed ("não entendi", "não é isso", "??")?"""
    reading = read(text)
    if not reading.words:
        return reading.questions >= 2
    return bool(_find([CONFUSED], reading, negatable=False))


def _frustration(reading: Reading) -> str:
    found = _find(FRUSTRATION_PATTERNS, reading, negatable=False)
    if found:
        return found
    confusions = sum(len(CONFUSED.findall(clause)) for clause in reading.clauses)
    if confusions >= 2:
        return "repeated confusion"
    if not reading.words:
        # Only punctuation: "???" once is a question; over and over, or on several lines, exasperation.
        groups = re.findall(r"\?{2,}", reading.raw)
        if reading.questions >= 5 or len(groups) >= 2:
            return "question marks"
    return ""


# --- Configured topics and keywords ----------------------------------------------------------------------------

STOPWORDS = _words(
    """a o as os de da do das dos e em no na nos nas um uma uns umas pra por com que se ao aos sobre para the of
    and or to in"""
)


def _same_word(a: str, b: str) -> bool:
    if a == b:
        return True
    if len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5] and abs(len(a) - len(b)) <= 4:
        return True  # plurals and verb forms: "botox"/"botoxes", "noiva"/"noivas", "atendem"/"atendimento"
    return len(a) >= 6 and len(b) >= 6 and _distance(a, b, 1) <= 1


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip() and not line.strip().startswith("#")]


def _phrase_in(phrase: list[str], words: list[str]) -> bool:
    size = len(phrase)
    starts = range(len(words) - size + 1)
    return any(all(_same_word(p, w) for p, w in zip(phrase, words[i : i + size], strict=True)) for i in starts)


def _configured(lines: str, reading: Reading, *, all_words: bool) -> str:
    for line in _lines(lines):
        for alternative in re.split(r"[,;]", line):
            phrase = tokens(fold(alternative))
            if not phrase:
                continue
            if all_words:
                content = [word for word in phrase if word not in STOPWORDS] or phrase
                hit = all(any(_same_word(word, seen) for seen in reading.words) for word in content)
            else:
                hit = _phrase_in(phrase, reading.words)
            if hit:
                return alternative.strip()
    return ""


# --- The decision ------------------------------------------------------------------------------------------


def _request(reason: str, priority: int, detail: str) -> HandoffRequest:
    return HandoffRequest(reason=reason, priority=int(priority), detail=detail[:200])


def detect(text: str, config: BotConfig | None) -> HandoffRequest | None:
    """A handoff this message calls for, or None. Most urgent reason first."""
    reading = read(text)
    if not reading.words and not reading.raw.strip():
        return None
    is_clinic = config is not None and config.business_kind == "clinic"

    if is_clinic and (found := _emergency(reading)):
        return _request(Reason.EMERGENCY, Priority.URGENT, found)
    found = _find(BILLING_PATTERNS, reading, skip=_billing_question)
    if found and not BILLING_QUESTIONS.search(reading.joined):
        return _request(Reason.BILLING, Priority.HIGH, found)
    if found := _find([BOT_INSULTS], reading, negatable=False):
        return _request(Reason.FRUSTRATION, Priority.NORMAL, found)
    for index, pattern in enumerate(COMPLAINT_PATTERNS):
        if found := _find([pattern], reading, negatable=index not in COMPLAINT_UNNEGATABLE):
            return _request(Reason.COMPLAINT, Priority.HIGH, found)
    if found := _result_problem(reading):
        return _request(Reason.COMPLAINT, Priority.HIGH, found)
    if found := _cancellation(reading):
        return _request(Reason.CANCELLATION, Priority.NORMAL, found)
    if found := (
        _find(REQUEST_PATTERNS, reading, skip=_only_describing) or _alone_request(reading) or _named_person(reading)
    ):
        return _request(Reason.CUSTOMER_REQUEST, Priority.NORMAL, found)
    if found := _shouting_complaint(reading):
        return _request(Reason.COMPLAINT, Priority.HIGH, found)
    if found := _frustration(reading):
        return _request(Reason.FRUSTRATION, Priority.NORMAL, found)
    if config is not None:
        if found := _configured(config.handoff_topics, reading, all_words=True):
            return _request(Reason.TOPIC, Priority.NORMAL, found)
        if found := _configured(config.handoff_keywords, reading, all_words=False):
            return _request(Reason.TOPIC, Priority.NORMAL, found)
    return None
