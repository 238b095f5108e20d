"""The demo inbox's bot: a salon and aesthetics clinic in São Paulo with its business details,
opening hours and a knowledge base of real questions, so the offline bot of the demo answers
what customers actually ask ("quanto custa a escova?", "vcs abrem sábado?").

Filled in when ``manage.py seed_demo`` announces the demo inbox (``demo_seeded``), once: a bot
that already has knowledge entries is left as its owner edited it. The content is Portuguese
data (what a Brazilian business writes), not interface text.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from bots.models import BotConfig, BusinessHours, KnowledgeEntry
from conversations import signals

BUSINESS = {
    "name": "Bella",
    # Salon and aesthetics clinic: "clinic", so a reaction after a procedure reaches a person
    # first as an emergency.
    "business_kind": BotConfig.BusinessKind.CLINIC,
    "business_name": "Studio Bella Vista — Salão & Estética",
    "business_address": (
        "Rua dos Pinheiros, 1234 — Pinheiros, São Paulo/SP, CEP 05422-001. "
        "5 minutos a pé da estação Fradique Coutinho (Linha 4-Amarela do metrô)."
    ),
    "services": (
        "Corte feminino: R$ 120\n"
        "Corte masculino: R$ 70\n"
        "Corte infantil: R$ 60\n"
        "Escova: R$ 80 (curto) a R$ 120 (longo)\n"
        "Escova progressiva sem formol: a partir de R$ 350\n"
        "Hidratação: R$ 90\n"
        "Coloração: a partir de R$ 180\n"
        "Mechas, luzes e balayage: a partir de R$ 450\n"
        "Manicure: R$ 45 · Pedicure: R$ 55 · Pé e mão: R$ 90\n"
        "Unha em gel: R$ 160\n"
        "Design de sobrancelha: R$ 60\n"
        "Alongamento de cílios fio a fio: R$ 220\n"
        "Limpeza de pele: R$ 220\n"
        "Depilação a laser: a partir de R$ 90 por sessão\n"
        "Drenagem linfática: R$ 180\n"
        "Maquiagem social: R$ 180"
    ),
    "payment_methods": (
        "Pix, cartões de crédito e débito (Visa, Mastercard, Elo, Amex) e dinheiro. "
        "Parcelamos em até 3x sem juros acima de R$ 300."
    ),
    "greeting": (
        "Olá! 👋 Aqui é a Bella, assistente virtual do Studio Bella Vista, salão e estética em Pinheiros. "
        "Posso ajudar com preços, horários, endereço, agendamentos e formas de pagamento."
    ),
    "persona": "Simpática, acolhedora e objetiva. Frases curtas, sem gírias, no máximo um emoji por mensagem.",
    "instructions": (
        "Nunca confirme um agendamento: colete nome, serviço e dia/horário preferidos e passe para a recepção. "
        "Não dê orientação médica; em caso de reação a um procedimento, passe para uma pessoa imediatamente."
    ),
    "handoff_topics": "casamento\natendimento a domicílio\nparceria ou permuta\nvaga de emprego",
    "handoff_keywords": "",
}

# Tuesday to Friday 9h-20h, Saturday 8h-18h; closed on Sunday and Monday.
HOURS = [
    (BusinessHours.Weekday.TUESDAY, time(9), time(20)),
    (BusinessHours.Weekday.WEDNESDAY, time(9), time(20)),
    (BusinessHours.Weekday.THURSDAY, time(9), time(20)),
    (BusinessHours.Weekday.FRIDAY, time(9), time(20)),
    (BusinessHours.Weekday.SATURDAY, time(8), time(18)),
]

# (title, body, keywords, in_menu)
KNOWLEDGE: list[tuple[str, str, str, bool]] = [
    (
        "Preços dos serviços",
        "Nossos principais valores:\n"
        "• Corte feminino R$ 120 · masculino R$ 70 · infantil R$ 60\n"
        "• Escova R$ 80 a R$ 120 · Progressiva a partir de R$ 350\n"
        "• Coloração a partir de R$ 180 · Mechas/luzes a partir de R$ 450\n"
        "• Manicure R$ 45 · Pedicure R$ 55 · Unha em gel R$ 160\n"
        "• Hidratação R$ 90 · Maquiagem R$ 180\n"
        "• Sobrancelha R$ 60 · Limpeza de pele R$ 220\n"
        "Pergunte por um serviço para ver os detalhes.",
        "preço, preços, valor, valores, tabela, quanto custa, serviços, lista",
        True,
    ),
    (
        "Quanto custa a escova?",
        "A escova custa R$ 80 para cabelo curto, R$ 100 para médio e R$ 120 para longo, já com lavagem. "
        "Escova modelada (com cachos) tem acréscimo de R$ 20.",
        "escova, escovinha, escova modelada, lavar e escovar, preço escova",
        False,
    ),
    (
        "Quanto custa a escova progressiva?",
        "A progressiva sem formol começa em R$ 350 (cabelo curto) e vai até R$ 600 (longo ou muito volumoso). "
        "Leva de 3 a 4 horas e dura de 3 a 4 meses. Pedimos um sinal de 30% via Pix para reservar o horário.",
        "progressiva, alisamento, selagem, sem formol, alisar, liso",
        False,
    ),
    (
        "Quanto custa o corte de cabelo?",
        "Corte feminino R$ 120 (com lavagem e finalização), masculino R$ 70 e infantil R$ 60 (até 10 anos). "
        "Franja avulsa R$ 30.",
        "corte, cortar, cortar cabelo, corte feminino, corte masculino, franja, aparar pontas",
        False,
    ),
    (
        "Coloração, mechas e luzes",
        "Coloração a partir de R$ 180 e retoque de raiz R$ 150. Mechas, luzes e balayage a partir de R$ 450, "
        "com avaliação gratuita antes para ver o tom e o tempo.",
        "coloração, tintura, pintar, pintar o cabelo, cor, mechas, luzes, balayage, loiro, raiz, retoque, platinado",
        False,
    ),
    (
        "Manicure, pedicure e unhas em gel",
        "Manicure R$ 45, pedicure R$ 55, pé e mão R$ 90. Unha em gel R$ 160, manutenção R$ 110 e "
        "esmaltação em gel R$ 80.",
        "unha, unhas, manicure, pedicure, pé e mão, gel, esmaltação, alongamento de unha, fibra",
        False,
    ),
    (
        "Sobrancelhas e cílios",
        "Design de sobrancelha R$ 60 (com henna R$ 75). Alongamento de cílios fio a fio R$ 220, "
        "manutenção R$ 130 e lash lifting R$ 150.",
        "sobrancelha, henna, design, cílios, alongamento de cílios, lash lifting, fio a fio",
        False,
    ),
    (
        "Limpeza de pele e tratamentos faciais",
        "Limpeza de pele R$ 220 (1h30), peeling a partir de R$ 280 e microagulhamento R$ 450. "
        "A avaliação com a esteticista é gratuita.",
        "limpeza de pele, facial, peeling, microagulhamento, cravos, acne, manchas, pele",
        False,
    ),
    (
        "Depilação a laser",
        "Valores por sessão: buço R$ 90, axilas R$ 150, virilha R$ 220, pernas inteiras R$ 450. "
        "Pacote de 10 sessões com 20% de desconto. Intervalo de 30 a 45 dias entre sessões.",
        "depilação, depilar, laser, pelos, buço, axila, virilha, perna",
        False,
    ),
    (
        "Drenagem linfática e massagem",
        "Drenagem linfática R$ 180 (1h) e massagem relaxante R$ 160. Pacote de 5 sessões de drenagem R$ 800.",
        "drenagem, linfática, massagem, relaxante, modeladora, inchaço, retenção",
        False,
    ),
    (
        "Horário de funcionamento",
        "Abrimos de terça a sexta, das 9h às 20h, e aos sábados, das 8h às 18h. "
        "Domingo, segunda e feriados nacionais estamos fechados.",
        "horário, horários, abre, abrem, aberto, fecha, funciona, funcionamento, sábado, domingo, segunda, feriado",
        True,
    ),
    (
        "Endereço e como chegar",
        "Estamos na Rua dos Pinheiros, 1234, em Pinheiros, São Paulo. Fica a 5 minutos a pé da estação "
        "Fradique Coutinho (Linha 4-Amarela do metrô).",
        "endereço, onde fica, onde fica o salão, localização, local, como chegar, metrô, rua, bairro, pinheiros",
        True,
    ),
    (
        "Estacionamento",
        "Temos manobrista na porta (R$ 25) e convênio com o estacionamento ao lado: R$ 15 por até 2 horas. "
        "Também há bicicletário.",
        "estacionamento, estacionar, carro, vaga, manobrista, valet, bicicleta",
        False,
    ),
    (
        "Como agendar",
        "Você pode agendar por aqui mesmo: diga o serviço, o dia e o horário que prefere e a recepção confirma "
        "em até 1 hora no horário de funcionamento. Encaixes no mesmo dia dependem da agenda.",
        "agendar, agendamento, marcar, marcar horário, horário disponível, horário livre, agenda, encaixe, reservar, "
        "vaga, hoje, amanhã",
        True,
    ),
    (
        "Formas de pagamento",
        "Aceitamos Pix, cartões de crédito e débito (Visa, Mastercard, Elo e Amex) e dinheiro. "
        "Acima de R$ 300 parcelamos em até 3x sem juros. Não aceitamos cheque.",
        "pagamento, pagar, pix, cartão, crédito, débito, dinheiro, parcelar, parcela, vezes, cheque",
        True,
    ),
    (
        "Política de cancelamento e atrasos",
        "Você pode cancelar ou remarcar sem custo até 24 horas antes. Com menos de 24 horas, ou se faltar, "
        "cobramos 50% do serviço no próximo agendamento. Atrasos acima de 15 minutos podem precisar ser remarcados.",
        "cancelar, cancelamento, cancelar horário, desmarcar, desmarcar horário, remarcar, remarcação, atraso, "
        "atrasar, faltar, falta",
        True,
    ),
    (
        "Sinal para reservar procedimentos longos",
        "Progressiva, mechas e pacotes pedem um sinal de 30% via Pix para reservar. O sinal é devolvido se você "
        "cancelar com 48 horas de antecedência.",
        "sinal, adiantamento, reserva, depósito, pagar antes",
        False,
    ),
    (
        "Produtos que usamos e vendemos",
        "Trabalhamos com Kérastase, L'Oréal Professionnel, Wella e Truss. Os produtos estão à venda na recepção, "
        "e a progressiva é sem formol.",
        "produtos, produto, marca, marcas, shampoo, máscara, kérastase, loreal, wella, truss, comprar, vendem",
        False,
    ),
    (
        "Atendem crianças?",
        "Sim! Corte infantil R$ 60 (até 10 anos) e manicure kids R$ 35. Crianças a partir de 2 anos.",
        "criança, crianças, infantil, kids, filho, filha, bebê",
        False,
    ),
    (
        "Pacote para noivas e madrinhas",
        "Pacote noiva (penteado, maquiagem e teste) a partir de R$ 1.200. Madrinhas: penteado e maquiagem "
        "R$ 350. Fale com a gente com a data do evento para reservar.",
        "noiva, noivas, madrinha, madrinhas, penteado, evento, formatura, festa, debutante",
        False,
    ),
    (
        "Maquiagem",
        "Maquiagem social R$ 180 e maquiagem com penteado R$ 300. Leva cerca de 1 hora.",
        "maquiagem, make, maquiar, penteado, festa",
        False,
    ),
    (
        "Vale-presente",
        "Temos vale-presente a partir de R$ 100, válido por 6 meses para qualquer serviço. "
        "Pode ser comprado por Pix e enviado por WhatsApp.",
        "presente, vale, vale presente, gift card, presentear, aniversário",
        False,
    ),
    (
        "Avaliação estética e toxina botulínica",
        "A avaliação com a esteticista é gratuita (20 minutos). Toxina botulínica e preenchimento são feitos pela "
        "dermatologista parceira: consulta R$ 250, abatida do procedimento.",
        "avaliação, consulta, dermatologista, botox, toxina botulínica, preenchimento, preenchimento labial, lábios, "
        "harmonização",
        False,
    ),
    (
        "Acessibilidade e Wi-Fi",
        "O salão fica no térreo, com acesso para cadeira de rodas e banheiro adaptado. O Wi-Fi é gratuito "
        "para clientes.",
        "acessibilidade, cadeira de rodas, cadeirante, acessível, wifi, wi-fi, internet",
        False,
    ),
]


def fill_demo_bot(inbox_id: int) -> BotConfig:
    """The demo business and its knowledge base on the inbox's bot, unless it already has
    knowledge (idempotent: two seeds at once or one after the other add nothing twice)."""
    with transaction.atomic():
        config, _ = BotConfig.objects.get_or_create(inbox_id=inbox_id)
        # The row lock makes a second seed wait here and then see the entries of the first.
        config = BotConfig.objects.select_for_update().get(pk=config.pk)
        if config.knowledge.exists():
            return config
        for field, value in BUSINESS.items():
            setattr(config, field, value)
        config.save(update_fields=[*BUSINESS.keys(), "updated"])
        if not config.hours.exists():
            BusinessHours.objects.bulk_create(
                BusinessHours(bot=config, weekday=weekday, opens=opens, closes=closes)
                for weekday, opens, closes in HOURS
            )
        KnowledgeEntry.objects.bulk_create(
            KnowledgeEntry(bot=config, title=title, body=body, keywords=keywords, in_menu=in_menu, position=index)
            for index, (title, body, keywords, in_menu) in enumerate(KNOWLEDGE, start=1)
        )
    return config


@receiver(signals.demo_seeded, dispatch_uid="bots.demo.fill_demo_bot")
def on_demo_seeded(sender: Any, *, inbox_id: int, **kwargs: Any) -> None:
    fill_demo_bot(inbox_id)
