"""The offline rules for handing a conversation to a person (bots.intents.detect): a labelled
corpus of what Brazilian customers write, with what must and must not reach a person."""

from __future__ import annotations

import time

import pytest

from bots import intents
from bots.models import BotConfig
from handoffs.models import Handoff

R = Handoff.Reason


def clinic() -> BotConfig:
    return BotConfig(business_kind=BotConfig.BusinessKind.CLINIC)


def salon(**fields: str) -> BotConfig:
    return BotConfig(business_kind=BotConfig.BusinessKind.SALON, **fields)


CUSTOMER_REQUEST = [
    "quero falar com um atendente",
    "Quero falar com atendente",
    "quero falar com atendente",
    "qro falar c atendente pfv",
    "q falar com atendente",
    "quero falar com atendenti",
    "atendete por favor",
    "ATENDENTE!!!",
    "atendenteeee",
    "Atendente",
    "atendente pf",
    "humano",
    "humano pfv",
    "HUMANO POR FAVOR",
    "falar com alguem",
    "falar com alguém",
    "Falar com atendente",
    "quero falar com gente",
    "me passa pra alguem",
    "me passa pra alguém, pfv",
    "tem alguém aí?",
    "tem alguem ai",
    "tem alguém ai???",
    "alguém?",
    "oi, alguém pode me ajudar?",
    "alguem me ajuda",
    "pessoa de verdade",
    "quero uma pessoa de verdade",
    "quero falar com uma pessoa real",
    "não quero falar com robô",
    "nao quero robo quero atendente",
    "não quero falar com robô, quero falar com gente",
    "chega de robô",
    "chama o gerente",
    "cadê o atendente???",
    "kd o atendente",
    "posso falar com a recepção?",
    "gostaria de falar com um atendente por favor",
    "preciso falar com alguém urgente",
    "me transfere pra um humano",
    "quero atendimento humano",
    "vc pode me passar para um atendente?",
    "vcs podem me passar pra um atendente",
    "da pra falar com uma pessoa?",
    "tem como falar com alguém?",
    "não consigo falar com ninguém",
    "pode me ligar?",
    "quero ser atendida por uma pessoa",
    "me coloca com um atendente",
    "Bom dia! Queria falar com alguém da clínica",
    "oi boa tarde, gostaria de falar com um humano",
    "ola, preciso conversar com um atendente",
    "posso falar com o responsável?",
    "quero falar com a dona do salão",
    "quero falar com o supervisor",
    "me encaminha pra um atendente pfv",
    "quero falar com um ser humano",
    "atendente humano pfv",
    "pfvvv atendente",
    "qria falar com alguem",
    "quero falar c alguém",
    "eu quero falar com uma pessoa",
    "não quero mais falar com robô",
    "falar com atendente agora",
    "preciso de um atendente",
    "quero um atendente",
    "talk to a human",
    "I want to talk to a real person",
    "can I speak with an agent please",
    "real person",
    "human please",
    "connect me to an agent",
    "is anyone there?",
    "Nao, quero falar com atendente",
    "quero falar com a atendente que foi ótima",
    "quero falar com o atendimento",
    "tem atendente?",
    "I need help from a human",
    "Speak to a manager",
    "vc é um robô? quero falar com uma pessoa",
    "Oi, é possível falar com uma atendente?",
    "me chama um atendente",
    "quero falar com o financeiro",
    "Quero falar com seu chefe",
    "me transfere",
    "não quero conversar com máquina",
    "Can I talk to someone?",
    "I need a human",
    "agent",
    "qro atendente",
    "falar c/ atendente",
    "tem como me passar pra alguém de verdade?",
    "ATENDENTEEEEE",
    "alguém me responde???",
    "oi, alguém?",
    "atendente?",
    "boa tarde, atendente por favor",
    "posso falar com a Juliana?",
    "hello, is there someone I can talk to?",
    "Gostaria de ser atendido por um humano",
    "Tem algum humano aí?",
    "Eu preciso falar com uma pessoa, não com robô",
    "Pode chamar alguém pra mim?",
    "me liga por favor",
    "Um atendente pode me ajudar?",
    "Algum atendente disponível?",
    "quero ser transferido para um atendente",
    "preciso que um humano me ajude",
    "não tem ninguém aí?",
    "Eu não quero robô",
    "Preferia falar com alguém, se possível",
    "Seria possível um atendente me ligar?",
    "é robô? quero humano",
    "quero falar com humano e não com máquina",
]

COMPLAINT = [
    "que absurdo, estou esperando há uma hora",
    "péssimo atendimento",
    "pessimo",
    "o serviço de vocês é horrível",
    "quero fazer uma reclamação",
    "vou no procon",
    "vou processar vocês",
    "vou reclamar no reclame aqui",
    "ESTOU ESPERANDO HÁ DUAS HORAS E NINGUÉM ME RESPONDE!!!",
    "vocês são uns incompetentes",
    "que merda de serviço",
    "não gostei do corte, ficou horrível",
    "estragaram meu cabelo",
    "isso é uma vergonha",
    "ridículo isso",
    "nunca mais volto aí",
    "falta de respeito com o cliente",
    "quero falar com o gerente, que absurdo",
    "vocês são uns ladrões",
    "até agora nada!!! ninguém resolve!!!",
    "this is unacceptable, worst service ever",
    "que descaso",
    "vcs são burros",
    "estou muito irritada com vocês",
    "vou entrar na justiça",
    "absurdoooo",
    "tô esperando resposta desde ontem",
    "até agora ninguém me respondeu",
    "já mandei 3 mensagens e nada",
    "vocês demoram muito pra responder",
    "a progressiva não durou nem uma semana",
    "meu cabelo caiu depois da progressiva",
    "fiquei com manchas na pele depois do laser",
    "estou muito insatisfeita com o resultado",
    "vocês me enganaram",
    "nunca fui tão mal atendida",
    "a moça da recepção foi grossa comigo",
    "meu pedido não chegou",
    "o produto veio errado",
    "I have a complaint",
    "this is ridiculous",
    "Vocês são muito ruins",
    "Serviço horroroso",
    "Que serviço porco",
    "Vou chamar a polícia",
    "o atendimento de vocês é muito ruim",
    "Que falta de profissionalismo",
    "Não volto nunca mais",
    "EU QUERO UMA RESPOSTA AGORA!!!",
    "VOCÊS NÃO RESPONDEM!!!",
]

BILLING = [
    "fui cobrada duas vezes",
    "cobrança indevida no meu cartão",
    "quero o estorno",
    "quero meu reembolso",
    "me devolve meu dinheiro",
    "quero meu dinheiro de volta",
    "paguei duas vezes o mesmo pix",
    "vou pedir chargeback",
    "I was charged twice",
    "vocês me cobraram a mais",
    "fui cobrado 2x",
    "cobraram em dobro no cartão",
    "não reconheço essa cobrança",
    "o valor veio errado na fatura",
    "preciso de reembolso do sinal que paguei",
    "cade meu estorno???",
    "I want a refund",
    "paguei e não recebi",
    "Vocês cobraram minha consulta duas vezes no cartão",
    "apareceu uma cobrança que eu não reconheço",
    "fiz o pix e não confirmaram",
    "quero o dinheiro do sinal de volta",
    "o estorno já caiu?",
    "o valor cobrado foi diferente do combinado",
    "quero contestar uma cobrança",
]

CANCELLATION = [
    "quero cancelar meu plano",
    "quero cancelar minha assinatura",
    "cancelar pedido",
    "quero cancelar o pacote de depilação",
    "quero cancelar",
    "cancelamento",
    "cancelar contrato",
    "quero o cancelamento do meu plano",
    "I want to cancel my subscription",
    "quero rescindir o contrato",
    "nao quero mais o pacote",
    "cancela minha compra pfv",
    "Quero cancelar minha matrícula",
    "desisto do pacote, quero cancelar",
    "please cancel my order",
    "Quero encerrar minha conta",
    "Como cancelo meu plano?",
    "Quero cancelar o serviço",
]

EMERGENCY = [
    "estou com dor forte depois do procedimento",
    "está sangrando muito",
    "estou com falta de ar",
    "minha mãe desmaiou",
    "tive uma reação alérgica",
    "meu rosto está inchado depois do botox",
    "febre alta desde ontem",
    "urgente, estou com muita dor",
    "dor de cabeça muito forte",
    "não consigo respirar direito",
    "o local da aplicação infeccionou",
    "é uma emergência",
    "urgente!! minha boca tá com febre e dor",
    "meu lábio inchou muito",
    "I can't breathe",
    "socorro",
    "não para de sangrar",
    "to passando mal depois da aplicação",
    "apareceram bolhas depois do peeling",
    "tive febre de 39 graus",
    "minha boca está muito inchada e dolorida",
    "o produto me deu alergia",
    "acho que tô tendo uma reação alérgica",
]

FRUSTRATION = [
    "robô burro",
    "vc não entende nada",
    "não é isso\nnão entendi",
    "já falei isso",
    "pela terceira vez, quero saber o preço",
    "??\n??",
    "????????",
    "aff",
    "ninguém me responde",
    "você é inútil",
    "esse bot é uma porcaria",
    "você não está entendendo",
    "não entendi\nnão entendi",
    "não serve pra nada esse robô",
    "ninguém vai me responder?",
    "Que bot inútil",
    "Você é burro?",
    "Não foi isso que eu perguntei",
    "Já perguntei isso três vezes",
    "Você só repete a mesma coisa",
]

MUST_NOT = [
    "não precisa chamar atendente",
    "o atendente de ontem foi ótimo",
    "a atendente foi muito gentil",
    "sem precisar de atendente",
    "não quero falar com atendente",
    "nao precisa de atendente, só quero saber o preço",
    "não precisa me passar pra ninguém",
    "oi",
    "olá",
    "oii",
    "bom dia",
    "boa tarde, tudo bem?",
    "Boa noite!",
    "BOM DIA!!!",
    "quanto custa a escova?",
    "QUANTO CUSTA A ESCOVA PROGRESSIVA?",
    "obrigada!",
    "obrigado, vocês são ótimos",
    "valeu",
    "vlw",
    "muito obrigada pela ajuda!!!",
    "vcs abrem sábado?",
    "qual o endereço?",
    "aceitam pix?",
    "tem estacionamento?",
    "qual o horário de funcionamento?",
    "fui atendida pela atendente Ana, foi ótima",
    "quero agradecer a atendente",
    "a conversa com a atendente foi ótima",
    "alguém me indicou vocês",
    "tem alguém que faz mega hair?",
    "mega hair de cabelo humano quanto custa",
    "quero agendar para duas pessoas",
    "Pessoal, boa tarde",
    "vocês fazem atendimento presencial?",
    "quero marcar com a dra Ana",
    "não precisa me ligar",
    "não é reclamação, só uma dúvida",
    "não tenho do que reclamar",
    "tenho vergonha do meu sorriso",
    "qual a política de reembolso?",
    "vocês dão recibo para reembolso do convênio?",
    "preciso cancelar meu horário de amanhã",
    "quero desmarcar minha consulta",
    "posso remarcar?",
    "qual a política de cancelamento?",
    "não quero cancelar, quero remarcar",
    "vocês fazem drenagem para inchaço?",
    "não tenho dor nenhuma",
    "o procedimento dói?",
    "vocês atendem emergência?",
    "eu pus o creme ontem",
    "não entendi",
    "??",
    "?",
    "...",
    "!!!",
    "",
    "   ",
    "👍",
    "😀😀😀",
    "<b>oi</b>",
    "<script>alert(1)</script>",
    "é a segunda vez que venho aqui, adorei",
    "já falei com a atendente ontem, ela marcou pra sexta",
    "eu já mandei o comprovante",
    "quero marcar um horário para sexta",
    "vocês trabalham com progressiva sem formol?",
    "a depilação a laser dói muito?",
    "hi, what time do you open?",
    "thanks!",
    "ok",
    "blz",
    "kkkkkkk",
    "Minha amiga falou muito bem da atendente de vocês",
    "quero saber o preço do corte masculino",
    "tem horário amanhã às 15h?",
    "sou cliente, vocês fazem unha em gel?",
    "qual o valor da limpeza de pele?",
    "consigo pagar em 3x no cartão?",
    "O atendimento de vocês é ótimo",
    "bom dia, quero marcar uma escova com a Ana",
    "quanto custa pra duas pessoas?",
    "vocês são humanos ou robôs?",
    "o atendimento humano de vocês é ótimo",
    "falar com a atendente foi ótimo",
    "tem atendente no sábado?",
    "como funciona o reembolso?",
    "paguei em 2x no cartão",
    "QUERO MARCAR UM HORARIO!!!",
    "Não tenho nenhuma reclamação, adorei",
    "vocês fazem tratamento para dor nas costas?",
    "tenho alergia a dipirona, posso fazer o procedimento?",
    "Minha filha tem febre, posso levar?",
    "não entendi o horário de sábado, pode repetir?",
    "I don't need to talk to a human",
    "The agent was very helpful",
    "posso cancelar com quanto tempo de antecedência?",
    "não precisa de humano, só quero o preço",
    "A atendente me falou que tinha horário",
    "tem alguma promoção?",
    "estou sem dinheiro, tem promoção?",
    "qual o preço da consulta de emergência?",
    "é normal sentir um pouco de dor depois?",
    "posso pagar em 2x?",
    "Vou falar com meu marido e te retorno",
    "Meu marido falou com um atendente ontem",
    "Qual o nome da atendente que me atendeu?",
    "AMEI O CORTE!!! OBRIGADA!!!",
    "obrigado!! vocês são ótimos!!!",
    "quanto custa por pessoa?",
    "pessoa com alergia pode fazer progressiva?",
    "quero cancelar o agendamento",
    "como faço para cancelar?",
    "falo com você depois",
    "A recepcionista disse que eu podia remarcar",
    "Preciso de uma manicure para sábado",
    "dor de dente",
    "Bom dia atendente",
    "Oi atendente, quanto custa a escova?",
    "Obrigado, atendente!",
    "Qual o horário de atendimento?",
    "O atendimento é por ordem de chegada?",
    "não preciso falar com a Juliana",
    "vou falar com o João",
    "Posso Falar Com Meu Marido?",
    "Queria falar com Você",
    "muito caro",
    "quero trocar um produto",
    "preciso de uma segunda via do boleto",
    "How much is a haircut?",
    "Do you speak English?",
    "tenho cabelo grosso, qual escova indicam?",
    "é normal cair cabelo depois da progressiva?",
    "Nunca fui mal atendida aí, adoro vocês",
    "o atendimento de vocês não é ruim",
    "meu cabelo está ruim, precisa de hidratação",
    "qual serviço é melhor pra cabelo fraco?",
    "Posso ligar pra vocês?",
    "qual o telefone de vocês?",
    "Vocês cobram taxa de cancelamento?",
    "hã?",
    "Até que horas vocês ficam abertos?",
    "Precisa agendar?",
    "Bom dia, quero agendar uma escova pra amanhã às 10h",
    "Tem promoção essa semana?",
    "não, obrigado, não preciso de atendente",
    "Não sei se preciso de atendente",
    "o atendente pode me mandar o endereço?",
    "quero uma consultoria de visagismo",
    "pode ir uma acompanhante comigo?",
    "BOM DIA, QUERO SABER O PREÇO AGORA!!!",
]


@pytest.mark.parametrize("text", CUSTOMER_REQUEST)
def test_it_hands_off_a_request_for_a_person(text: str) -> None:
    found = intents.detect(text, salon())
    assert found is not None, text
    assert (found.reason, found.priority) == (R.CUSTOMER_REQUEST, Handoff.Priority.NORMAL), text


@pytest.mark.parametrize("text", COMPLAINT)
def test_it_hands_off_a_complaint_with_high_priority(text: str) -> None:
    found = intents.detect(text, salon())
    assert found is not None, text
    assert (found.reason, found.priority) == (R.COMPLAINT, Handoff.Priority.HIGH), text


@pytest.mark.parametrize("text", BILLING)
def test_it_hands_off_a_money_dispute_with_high_priority(text: str) -> None:
    found = intents.detect(text, salon())
    assert found is not None, text
    assert (found.reason, found.priority) == (R.BILLING, Handoff.Priority.HIGH), text


@pytest.mark.parametrize("text", CANCELLATION)
def test_it_hands_off_a_cancellation_of_a_plan_or_order(text: str) -> None:
    found = intents.detect(text, salon())
    assert found is not None, text
    assert (found.reason, found.priority) == (R.CANCELLATION, Handoff.Priority.NORMAL), text


@pytest.mark.parametrize("text", EMERGENCY)
def test_it_hands_off_a_clinic_emergency_as_urgent(text: str) -> None:
    found = intents.detect(text, clinic())
    assert found is not None, text
    assert (found.reason, found.priority) == (R.EMERGENCY, Handoff.Priority.URGENT), text


def test_outside_a_clinic_a_reaction_is_a_complaint_not_an_emergency() -> None:
    found = intents.detect("o produto me deu alergia", salon())
    assert (found.reason, found.priority) == (R.COMPLAINT, Handoff.Priority.HIGH)


@pytest.mark.parametrize("text", EMERGENCY[:8])
def test_it_sees_no_emergency_outside_a_clinic(text: str) -> None:
    found = intents.detect(text, salon())
    assert found is None or found.reason != R.EMERGENCY


@pytest.mark.parametrize("text", FRUSTRATION)
def test_it_hands_off_a_frustrated_customer(text: str) -> None:
    found = intents.detect(text, salon())
    assert found is not None, text
    assert (found.reason, found.priority) == (R.FRUSTRATION, Handoff.Priority.NORMAL), text


@pytest.mark.parametrize("text", MUST_NOT)
def test_it_does_not_hand_off_greetings_questions_thanks_or_mentions(text: str) -> None:
    assert intents.detect(text, clinic()) is None, text
    assert intents.detect(text, salon()) is None, text


def test_the_corpus_is_large() -> None:
    labelled = CUSTOMER_REQUEST + COMPLAINT + BILLING + CANCELLATION + EMERGENCY + FRUSTRATION + MUST_NOT
    assert len(set(labelled)) >= 150


def test_it_hands_off_configured_topics_whatever_the_words_order_or_accents() -> None:
    config = salon(handoff_topics="orçamento de noiva\n# a comment\nmega hair, alongamento de cílios")
    assert intents.detect("vcs fazem orcamento pra noivas?", config).reason == R.TOPIC
    assert intents.detect("Quanto fica o ALONGAMENTO dos cilios?", config).reason == R.TOPIC
    assert intents.detect("mega hair", config).detail == "mega hair"
    assert intents.detect("quanto custa a escova?", config) is None
    assert intents.detect("a comment", config) is None


def test_it_hands_off_configured_keywords_as_a_topic() -> None:
    config = salon(handoff_keywords="botox\npromoção relâmpago")
    found = intents.detect("A promocao relampago ainda vale?", config)
    assert (found.reason, found.priority, found.detail) == (R.TOPIC, Handoff.Priority.NORMAL, "promoção relâmpago")
    assert intents.detect("quanto é o BOTOX", config).reason == R.TOPIC
    assert intents.detect("relâmpago", config) is None


def test_it_works_without_a_config() -> None:
    assert intents.detect("quero falar com um atendente", None).reason == R.CUSTOMER_REQUEST
    assert intents.detect("estou sangrando", None) is None


def test_the_most_urgent_reason_wins() -> None:
    found = intents.detect("quero falar com um atendente, fui cobrado duas vezes", clinic())
    assert found.reason == R.BILLING
    found = intents.detect("absurdo!!! estou sangrando muito", clinic())
    assert found.reason == R.EMERGENCY


def test_a_request_later_in_the_message_is_not_cancelled_by_an_earlier_negation() -> None:
    assert intents.detect("não precisa chamar atendente", salon()) is None
    text = "não precisa chamar atendente. aliás, quero sim falar com alguém"
    assert intents.detect(text, salon()).reason == R.CUSTOMER_REQUEST
    assert intents.detect("não quero incomodar, mas queria falar com alguém", salon()).reason == R.CUSTOMER_REQUEST


def test_it_reads_html_and_emoji_around_a_request() -> None:
    assert intents.detect("<p>quero <b>falar</b> com atendente</p>", salon()).reason == R.CUSTOMER_REQUEST
    assert intents.detect("🙏🙏 atendente por favor 🙏", salon()).reason == R.CUSTOMER_REQUEST
    assert intents.detect("😡😡😡", salon()).reason == R.COMPLAINT


def test_it_reads_a_very_long_message_quickly() -> None:
    text = ("Oi, queria saber sobre a escova progressiva e os horários de sábado. " * 2000) + "quero falar com alguém"
    started = time.perf_counter()
    found = intents.detect(text, salon())
    assert time.perf_counter() - started < 2.0
    assert found is None  # past the part a person reads in a chat message
    assert intents.detect("x" * 100_000, salon()) is None
    assert intents.detect("a " * 50_000, salon()) is None


def test_the_detail_says_what_matched() -> None:
    found = intents.detect("qro falar c atendente pfv", salon())
    assert found.detail == "falar com atendente"
    assert found.summary == ""


def test_it_normalises_the_way_customers_type() -> None:
    assert intents.tokens(intents.fold("Vc PFV atendenteee Ñ")) == ["voce", "por", "favor", "atendente", "nao"]
    assert intents.fold("Açúcar É ÓTIMO") == "acucar e otimo"
    assert intents.canonical("atendenti") == "atendente"
    assert intents.canonical("algum") == "algum"
    assert intents.canonical("pessoaaa") == "pessoa"


def test_confused_sees_a_missed_answer() -> None:
    assert intents.confused("não entendi")
    assert intents.confused("??")
    assert not intents.confused("quanto custa?")


def test_the_demo_topics_hand_off_weddings_and_home_visits() -> None:
    from bots.demo import BUSINESS

    config = BotConfig(business_kind=BUSINESS["business_kind"], handoff_topics=BUSINESS["handoff_topics"])
    assert intents.detect("quero fazer o cabelo pro meu casamento", config).reason == R.TOPIC
    assert intents.detect("vocês atendem em domicílio?", config).reason == R.TOPIC
    assert intents.detect("quanto custa a escova?", config) is None


def test_it_survives_any_text() -> None:
    import random

    rng = random.Random(8)
    alphabet = "aáãâeéêiíoóõôuúçAÁÇ ?!.,;:-_/\\'\"<>&*()[]{}|\n\t\x00\u200b\u202e\u0301😡🤬👍🙏🇧🇷" + "".join(
        chr(c) for c in range(0x30, 0x7B)
    )
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        found = intents.detect(text, clinic())
        assert found is None or found.reason in R.values
    assert intents.detect(None, clinic()) is None  # type: ignore[arg-type]
