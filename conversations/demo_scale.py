"""A large, realistic dataset for the console benchmarks (``manage.py seed_demo --scale N``).

Additive, not idempotent: every run adds N conversations (about 10 messages each) with new
customers, on top of whatever exists. The scaffolding (four inboxes, their labels, two
supervisors and twenty attendants with memberships) is created once and reused by later runs.
The staff users get unusable passwords: the benchmark logs them in with ``force_login``, and
a dataset meant for load is no place for a known password.

Rows are written in batches of 2,000 conversations (one transaction each): ``bulk_create``,
and COPY for the messages on PostgreSQL (100k conversations and 1M messages in about three
minutes). Never through the intake services: this is a snapshot of a busy helpdesk, not a
replay of its webhooks, so no events, signals or tasks fire.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone

from conversations.models import Conversation, Customer, Inbox, Label, Membership, Message

Status = Conversation.Status

INBOXES = (
    ("SCALE-PNID-1", "Loja Centro", "5511930000001"),
    ("SCALE-PNID-2", "Clínica Sorriso", "5521930000002"),
    ("SCALE-PNID-3", "Salão Bela Vista", "5531930000003"),
    ("SCALE-PNID-4", "Assistência Técnica", "5541930000004"),
)
GLOBAL_LABELS = ("Urgente", "Orçamento", "Reclamação", "Agendamento", "Pós-venda", "VIP")
INBOX_LABELS = ("Entrega", "Troca", "Pagamento")
SUPERVISORS = ("scale_supervisora1", "scale_supervisor2")
ATTENDANTS = tuple(f"scale_atendente{n:02d}" for n in range(1, 21))

FIRST_NAMES = (
    "João", "José", "Antônio", "Márcia", "Conceição", "Luíza", "Sebastião", "Júlia", "Letícia", "Cauã",
    "Vitória", "Fábio", "Mônica", "André", "Cecília", "Gonçalo", "Ana", "Beatriz", "Lucas", "Mariana",
    "Rafael", "Camila", "Thiago", "Patrícia", "Gustavo", "Fernanda", "Rodrigo", "Larissa", "Otávio", "Inês",
    "Caio", "Débora", "Érica", "Ígor", "Valéria", "Raí", "Lúcia", "Heitor", "Giovana", "Benício",
)  # fmt: skip
LAST_NAMES = (
    "Silva", "Souza", "Araújo", "Gonçalves", "da Conceição", "Magalhães", "Simões", "Brandão", "Pereira",
    "Azevedo", "Lima", "Gomes", "Ribeiro", "Fernandes", "Carvalho", "Rocha", "Dias", "Nascimento", "Freitas",
    "Assunção", "Patrício", "Monteiro", "Galvão", "Figueirêdo", "Sá", "Marçal", "Estevão", "Damásio",
)  # fmt: skip
PRODUCTS = (
    "açúcar mascavo", "café especial", "pão de queijo congelado", "azeite extravirgem", "sabonete de glicerina",
    "óculos de sol", "relógio digital", "tênis de corrida", "camiseta polo", "mochila escolar", "geladeira frost free",
    "máquina de lavar", "micro-ondas", "notebook", "celular", "fone de ouvido", "carregador turbo",
    "escova progressiva", "limpeza dental", "clareamento", "aparelho ortodôntico", "corte masculino",
    "manicure e pedicure", "hidratação capilar", "troca de tela", "formatação do computador", "bateria do celular",
)  # fmt: skip
PLACES = (
    "Pinheiros", "Moema", "Tatuapé", "Copacabana", "Tijuca", "Savassi", "Funcionários", "Batel", "Água Verde",
    "Boa Viagem", "Itaim Bibi", "Santana", "Liberdade", "Botafogo", "Jardim Botânico", "São Cristóvão",
)  # fmt: skip
DAYS = ("segunda", "terça", "quarta", "quinta", "sexta", "sábado")
CUSTOMER_LINES = (
    "Oi, boa tarde! Vocês têm {product} em estoque?",
    "Bom dia! Qual o preço do {product}?",
    "Olá, meu pedido #{order} ainda não chegou. Podem verificar?",
    "Quero agendar {product} para {day} de manhã, tem horário?",
    "Vocês entregam em {place}? Quanto fica o frete?",
    "O {product} que comprei veio com defeito, como faço a troca?",
    "Aceitam Pix ou só cartão? Dá pra parcelar em 3x?",
    "Preciso da nota fiscal do pedido #{order}, por favor.",
    "Vi o anúncio de promoção do {product}, ainda está valendo?",
    "Qual o horário de funcionamento no {day}?",
    "Obrigado pela ajuda! 😊",
    "Certo, vou aguardar então.",
    "Pode ser na {day} às {hour}h?",
    "Ainda não recebi o código de rastreio do pedido #{order}.",
    "Tem garantia? Quanto tempo?",
    "Perfeito, pode confirmar!",
)
REPLY_LINES = (
    "Olá, {name}! Temos {product} sim. Posso separar para você?",
    "O {product} está saindo por R$ {price},00 à vista ou em até 3x sem juros.",
    "Verifiquei aqui: o pedido #{order} saiu para entrega hoje e chega até as 18h. 📦",
    "Temos horário na {day} às {hour}h. Fica bom para você?",
    "Entregamos em {place} sim! O frete fica R$ {fee},00.",
    "Sinto muito pelo problema, {name}. Vou abrir a troca agora mesmo.",
    "Aceitamos Pix, cartão de débito e crédito em até 3x.",
    "Enviei a nota fiscal do pedido #{order} para o seu e-mail.",
    "Funcionamos de segunda a sábado, das 9h às 18h.",
    "Agendado! Qualquer coisa é só chamar aqui. 😉",
    "A garantia é de 12 meses pelo fabricante.",
    "Um momento, vou transferir para um atendente.",
)


@dataclass
class ScaleResult:
    inboxes: int
    users: int
    customers: int
    conversations: int
    messages: int


def _scaffolding() -> tuple[list[Inbox], dict[int, list[Any]], dict[int, list[Label]]]:
    """Inboxes, staff with memberships and labels: created once, reused by every later run."""
    User = get_user_model()
    inboxes = []
    for pnid, name, number in INBOXES:
        inbox, _ = Inbox.objects.get_or_create(phone_number_id=pnid, defaults={"name": name, "display_number": number})
        inboxes.append(inbox)

    def user(username: str, first_name: str) -> Any:
        found = User.objects.filter(username=username).first()
        if found is None:
            found = User(username=username, first_name=first_name, is_staff=True)
            found.set_unusable_password()
            found.save()
        return found

    supervisors = [user(name, first) for name, first in zip(SUPERVISORS, ("Renata", "Marcos"), strict=True)]
    attendants = [user(name, FIRST_NAMES[i % len(FIRST_NAMES)]) for i, name in enumerate(ATTENDANTS)]
    # Each supervisor runs two inboxes; each attendant works in one or two (five per inbox at least).
    for i, supervisor in enumerate(supervisors):
        for inbox in inboxes[i * 2 : i * 2 + 2]:
            Membership.objects.get_or_create(
                user=supervisor, inbox=inbox, defaults={"role": Membership.Role.SUPERVISOR}
            )
    staff_by_inbox: dict[int, list[Any]] = {inbox.pk: [] for inbox in inboxes}
    for i, attendant in enumerate(attendants):
        homes = [inboxes[i % 4]] + ([inboxes[(i + 1) % 4]] if i % 3 == 0 else [])
        for inbox in homes:
            Membership.objects.get_or_create(user=attendant, inbox=inbox, defaults={"role": Membership.Role.ATTENDANT})
            staff_by_inbox[inbox.pk].append(attendant)

    labels: dict[int, list[Label]] = {}
    shared = [Label.objects.get_or_create(inbox=None, name=name)[0] for name in GLOBAL_LABELS]
    for inbox in inboxes:
        own = [Label.objects.get_or_create(inbox=inbox, name=name)[0] for name in INBOX_LABELS]
        labels[inbox.pk] = shared + own
    return inboxes, staff_by_inbox, labels


def _fill(line: str, rng: random.Random, name: str) -> str:
    return line.format(
        product=rng.choice(PRODUCTS),
        order=rng.randint(1000, 99999),
        day=rng.choice(DAYS),
        place=rng.choice(PLACES),
        hour=rng.choice((8, 9, 10, 11, 14, 15, 16, 17)),
        name=name,
        price=rng.randint(19, 2999),
        fee=rng.randint(8, 45),
    )


def _status(rng: random.Random) -> str:
    # A helpdesk some weeks old: most conversations are closed; a few are live right now.
    roll = rng.random()
    if roll < 0.04:
        return Status.QUEUED
    if roll < 0.09:
        return Status.BOT
    if roll < 0.15:
        return Status.ASSIGNED
    return Status.CLOSED


def _script(
    rng: random.Random, ends: datetime, status: str, assignee: Any, name: str
) -> tuple[list[tuple[Any, ...]], datetime | None]:
    """One conversation's messages, the last one at ``ends``: (direction, sender kind,
    sender id, text, time, status)."""
    count = rng.randint(6, 14)
    gaps = [timedelta(seconds=rng.randint(20, 900)) for _ in range(count - 1)]
    when = ends - sum(gaps, timedelta())
    last_inbound = None
    script = []
    for m in range(count):
        # The customer opens, then the bot or an attendant and the customer alternate; a
        # queued conversation ends on the customer (that is why it waits).
        if m % 2 == 0 or (m == count - 1 and status == Status.QUEUED):
            text = _fill(rng.choice(CUSTOMER_LINES), rng, name)
            script.append(("in", "customer", None, text, when, Message.Status.RECEIVED))
            last_inbound = when
        else:
            text = _fill(rng.choice(REPLY_LINES), rng, name)
            by_attendant = assignee is not None and m > 2
            kind, sender = ("attendant", assignee.pk) if by_attendant else ("bot", None)
            script.append(("out", kind, sender, text, when, Message.Status.READ))
        if m < count - 1:
            when += gaps[m]
    return script, last_inbound


def _insert_messages(rows: list[dict[str, Any]], now: datetime) -> None:
    """Insert messages given as field values (every other field takes its default).

    On PostgreSQL with COPY: a million rows through ``bulk_create`` spend most of their time
    building model instances and preparing ~50 values each (five minutes for 100k
    conversations); COPY takes the row tuples as they are. Elsewhere, ``bulk_create``."""
    if connection.vendor != "postgresql":
        Message.objects.bulk_create([Message(**row) for row in rows], batch_size=5000)
        return
    fields = [f for f in Message._meta.concrete_fields if not f.primary_key]
    defaults: dict[str, Any] = {}
    for f in fields:
        value = f.get_default()
        if f.attname in ("created", "updated"):
            value = now
        # JSON columns travel as text in COPY.
        defaults[f.attname] = json.dumps(value) if isinstance(f, models.JSONField) else value
    columns = [f.column for f in fields]
    names = [f.attname for f in fields]
    with connection.cursor() as cursor:
        sql = f"COPY {Message._meta.db_table} ({', '.join(columns)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                values = {**defaults, **row, "uuid": uuid.uuid4(), "content": json.dumps(row["content"])}
                copy.write_row([values[name] for name in names])


def build(
    n: int,
    *,
    batch: int = 2000,
    seed: int | None = None,
    weeks: int = 8,
    progress: Callable[[int], None] | None = None,
) -> ScaleResult:
    """Add ``n`` conversations (two per customer: an older closed one and a newer one in a mixed
    status, so the one-open-per-customer-and-inbox constraint holds) with about 10 messages each."""
    rng = random.Random(seed)
    inboxes, staff_by_inbox, labels = _scaffolding()
    batch = max(2, batch - batch % 2)  # even: a batch holds whole customer pairs
    now = timezone.now()
    span = timedelta(weeks=weeks).total_seconds()
    # Fresh, unique WhatsApp ids for this run: above every customer id so far.
    start = (Customer.objects.aggregate(top=Max("id"))["top"] or 0) + 1
    run = uuid.uuid4().hex[:8]
    LabelLink = Conversation.labels.through
    totals = ScaleResult(len(inboxes), 2 + len(ATTENDANTS), 0, 0, 0)

    done = 0
    while done < n:
        size = min(batch, n - done)
        with transaction.atomic():
            customers = []
            for k in range((size + 1) // 2):
                seq = start + (done // 2) + k
                ddd = rng.choice((11, 21, 31, 41, 51, 61, 71, 81, 85, 91))
                wa_id = f"55{ddd}9{seq:08d}"
                customers.append(
                    Customer(wa_id=wa_id, phone=f"+{wa_id}", name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
                )
            customers = Customer.objects.bulk_create(customers)

            conversations: list[Conversation] = []
            scripts: list[list[tuple[Any, ...]]] = []
            for i in range(size):
                customer = customers[i // 2]
                inbox = inboxes[customer.pk % len(inboxes)]
                newer = i % 2 == 1
                status = _status(rng) if newer else Status.CLOSED
                if status == Status.CLOSED:
                    # Spread over the weeks (a customer's second conversation over the recent half).
                    offset = rng.random() * span * (0.5 if newer else 1.0)
                else:
                    offset = rng.random() * (3 * 3600 if status == Status.QUEUED else 2 * 86400)
                # The last message ``offset`` ago (a minute at least): nothing in the future.
                ends = now - timedelta(seconds=offset + 60)
                assignee = None
                if status == Status.ASSIGNED or (status == Status.CLOSED and rng.random() < 0.7):
                    assignee = rng.choice(staff_by_inbox[inbox.pk])
                script, last_inbound = _script(rng, ends, status, assignee, customer.name.split()[0])
                opened, last = script[0][4], script[-1][4]
                conversations.append(
                    Conversation(
                        inbox=inbox,
                        customer=customer,
                        status=status,
                        assignee=assignee,
                        opened=opened,
                        last_message=last,
                        last_inbound=last_inbound,
                        closed=min(now, last + timedelta(minutes=rng.randint(1, 60)))
                        if status == Status.CLOSED
                        else None,
                        resolution="Resolvido pelo atendimento." if status == Status.CLOSED else "",
                    )
                )
                scripts.append(script)
            conversations = Conversation.objects.bulk_create(conversations)

            messages = []
            links = []
            for conversation, script in zip(conversations, scripts, strict=True):
                for m, (direction, kind, sender, text, when, state) in enumerate(script):
                    messages.append(
                        {
                            "conversation_id": conversation.pk,
                            "direction": direction,
                            "sender_kind": kind,
                            "sender_id": sender,
                            "type": "text",
                            "text": text,
                            "content": {"body": text},
                            "wamid": f"wamid.SCALE-{run}-{conversation.pk}-{m}",
                            "wa_timestamp": when,
                            "status": state,
                        }
                    )
                for label in rng.sample(labels[conversation.inbox_id], k=rng.choice((0, 0, 1, 1, 2))):
                    links.append(LabelLink(conversation_id=conversation.pk, label_id=label.pk))
            _insert_messages(messages, now)
            LabelLink.objects.bulk_create(links, batch_size=5000)

        done += size
        totals.customers += len(customers)
        totals.conversations += len(conversations)
        totals.messages += len(messages)
        if progress is not None:
            progress(done)
    return totals
