"""Demo data for the embedded mode: the default inbox, demo logins, and a few conversations.

Idempotent: users and groups are created only when missing (an existing password is never
reset), and every demo message has a fixed wamid, so a second run stores nothing new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from conversations import services, signals
from conversations.models import Conversation, Customer, Inbox, Membership, Message

DEFAULT_PASSWORD = "atende-demo-2026"
SUPERVISORS = "Supervisores"
ATTENDANTS = "Atendentes"

# Attendants only read the conversations they work on; inbox credentials, alerts and raw
# webhook bodies (every customer's messages) stay with supervisors and admins.
ATTENDANT_PERMISSIONS = ("view_customer", "view_conversation", "view_message")
# Supervisors can also fix a stuck conversation, retry downloads, resolve alerts and
# reprocess webhooks; changing inbox credentials stays with the superuser.
SUPERVISOR_PERMISSIONS = (
    *ATTENDANT_PERMISSIONS,
    "change_conversation",
    "change_message",
    "view_inbox",
    "view_alert",
    "change_alert",
    "view_webhookevent",
    "change_webhookevent",
    "view_orphanstatus",
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    group: str | None
    superuser: bool = False


DEMO_USERS = (
    DemoUser("admin", "Admin", None, superuser=True),
    DemoUser("supervisora", "Renata", SUPERVISORS),
    DemoUser("atendente1", "Lucas", ATTENDANTS),
    DemoUser("atendente2", "Fernanda", ATTENDANTS),
)


@dataclass(frozen=True)
class DemoMessage:
    wamid: str
    minutes_ago: int
    text: str = ""
    type: str = "text"
    content: dict[str, Any] | None = None
    outbound: bool = False


@dataclass(frozen=True)
class DemoChat:
    wa_id: str
    name: str
    messages: tuple[DemoMessage, ...]
    referral: dict[str, Any] = field(default_factory=dict)


DEMO_CHATS = (
    # A dental clinic booking, confirmed with a reply button.
    DemoChat(
        "5511987650001",
        "Mariana Souza",
        (
            DemoMessage("wamid.DEMO-001", 180, "Oi, boa tarde! Queria marcar uma limpeza com a Dra. Paula."),
            DemoMessage(
                "wamid.DEMO-002",
                179,
                "Olá, Mariana! 😊 Temos horário na terça às 14h ou na quinta às 9h30. Qual fica melhor?",
                outbound=True,
            ),
            DemoMessage("wamid.DEMO-003", 170, "Quinta às 9h30, por favor."),
            DemoMessage(
                "wamid.DEMO-004",
                169,
                "Pré-agendado: quinta-feira às 9h30 com a Dra. Paula. Toque em Confirmar para garantir o horário.",
                outbound=True,
            ),
            DemoMessage(
                "wamid.DEMO-005",
                160,
                "Confirmar",
                type="interactive",
                content={"type": "button_reply", "button_reply": {"id": "confirmar", "title": "Confirmar"}},
            ),
        ),
    ),
    # A hair salon asking for a price and a Saturday slot.
    DemoChat(
        "5521987650002",
        "Juliana Pereira",
        (
            DemoMessage(
                "wamid.DEMO-006",
                95,
                "Bom dia! Vocês fazem escova progressiva? Quanto fica para cabelo na altura dos ombros?",
            ),
            DemoMessage(
                "wamid.DEMO-007",
                94,
                "Bom dia, Juliana! Fazemos sim 💇‍♀️ Para cabelo na altura dos ombros fica R$ 180,00. Quer agendar?",
                outbound=True,
            ),
            DemoMessage("wamid.DEMO-008", 90, "Quero sim! Tem horário no sábado de manhã?"),
        ),
    ),
    # A store order with a delivery location and a reaction to the answer.
    DemoChat(
        "5531987650003",
        "Carlos Oliveira",
        (
            DemoMessage(
                "wamid.DEMO-009",
                60,
                "Olá, fiz o pedido #1234 no site (2 camisetas tamanho M). Vocês entregam neste endereço?",
            ),
            DemoMessage(
                "wamid.DEMO-010",
                59,
                "Praça da Liberdade, Praça da Liberdade, Funcionários, Belo Horizonte - MG, 30140-010",
                type="location",
                content={
                    "latitude": -19.932,
                    "longitude": -43.938,
                    "name": "Praça da Liberdade",
                    "address": "Praça da Liberdade, Funcionários, Belo Horizonte - MG, 30140-010",
                },
            ),
            DemoMessage(
                "wamid.DEMO-011",
                55,
                "Entregamos sim! O pedido #1234 sai amanhã cedo e chega até as 18h. 📦",
                outbound=True,
            ),
            DemoMessage(
                "wamid.DEMO-012",
                54,
                type="reaction",
                content={"message_id": "wamid.DEMO-011", "emoji": "👍"},
            ),
        ),
    ),
    # A customer who came from a click-to-WhatsApp ad.
    DemoChat(
        "5585987650004",
        "Ana Beatriz Lima",
        (DemoMessage("wamid.DEMO-013", 20, "Oi! Vi o anúncio da promoção de inverno. Ainda está valendo?"),),
        referral={
            "source_url": "https://fb.me/demo-promocao-inverno",
            "source_id": "120000000000001",
            "source_type": "ad",
            "headline": "Promoção de inverno: 20% em toda a loja",
            "body": "Só até domingo. Fale com a gente pelo WhatsApp!",
            "media_type": "image",
            "ctwa_clid": "ARAkDEMO-ctwa-clid-0001",
        },
    ),
    # A late delivery, waiting for a person.
    DemoChat(
        "5551987650005",
        "Pedro Henrique Santos",
        (
            DemoMessage(
                "wamid.DEMO-014", 5, "Boa noite, meu pedido #1198 ainda não chegou. Podem verificar, por favor?"
            ),
        ),
    ),
)


def _new_message(chat: DemoChat, item: DemoMessage, now: datetime) -> services.NewMessage:
    when = now - timedelta(minutes=item.minutes_ago)
    content = item.content if item.content is not None else ({"body": item.text} if item.type == "text" else {})
    new = services.NewMessage(
        wamid=item.wamid,
        type=item.type,
        timestamp=when,
        text=item.text,
        content=content,
        referral=chat.referral or None,
    )
    if item.outbound:
        new.direction = Message.Direction.OUT
        new.sender_kind = Message.SenderKind.BOT
    else:
        # Shaped like the messages[] item WhatsApp would have sent, so the admin's raw view
        # looks like a real one.
        new.raw = {
            "from": chat.wa_id,
            "id": item.wamid,
            "timestamp": str(int(when.timestamp())),
            "type": item.type,
            item.type: content,
        }
        if chat.referral:
            new.raw["referral"] = chat.referral
    return new


class Command(BaseCommand):
    help = "Create demo users, groups and WhatsApp conversations (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="Print nothing unless something goes wrong.")
        parser.add_argument(
            "--scale",
            type=int,
            default=0,
            metavar="N",
            help="Instead of the demo, ADD N conversations (~10 messages each) for benchmarks (demo_scale.py).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet: bool = options["quiet"]
        if options["scale"]:
            self._scale(options["scale"], quiet)
            return
        password = os.environ.get("DEMO_PASSWORD", "")
        if settings.PRODUCTION:
            if not password:
                raise CommandError(
                    "Production mode (DATABASE_URL and REDIS_URL are set): refusing to create demo users with "
                    "the default password. Set DEMO_PASSWORD to a strong password."
                )
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("DEMO_PASSWORD is too weak: " + " ".join(exc.messages)) from exc
        password = password or DEFAULT_PASSWORD

        inbox = services.ensure_default_inbox()
        groups = self._groups()
        users = [self._user(spec, password, groups) for spec in DEMO_USERS]

        counts_before = self._counts()
        if inbox is not None:
            self._memberships(inbox)
            # Before the chats: their messages reach the bot, which needs its knowledge.
            signals.demo_seeded.send(sender=None, inbox_id=inbox.pk)
            self._conversations(inbox)
        created = {name: after - counts_before[name] for name, after in self._counts().items()}

        if not quiet:
            self._report(inbox, users, password, created)

    def _scale(self, n: int, quiet: bool) -> None:
        from conversations import demo_scale

        if n < 0:
            raise CommandError("--scale must be a positive number of conversations.")
        started = timezone.now()

        def progress(done: int) -> None:
            if not quiet and (done % 10_000 == 0 or done == n):
                self.stdout.write(f"  {done}/{n} conversations ({(timezone.now() - started).total_seconds():.0f} s)")

        result = demo_scale.build(n, progress=progress)
        if not quiet:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Added {result.customers} customers, {result.conversations} conversations and "
                    f"{result.messages} messages in {(timezone.now() - started).total_seconds():.0f} s "
                    f"({result.inboxes} inboxes, {result.users} staff users with unusable passwords)."
                )
            )

    def _groups(self) -> dict[str, Group]:
        wanted = {SUPERVISORS: SUPERVISOR_PERMISSIONS, ATTENDANTS: ATTENDANT_PERMISSIONS}
        groups = {}
        for name, codenames in wanted.items():
            group, _ = Group.objects.get_or_create(name=name)
            permissions = list(
                Permission.objects.filter(content_type__app_label="conversations", codename__in=codenames)
            )
            missing = set(codenames) - {p.codename for p in permissions}
            if missing:
                raise CommandError(f"Missing permissions {sorted(missing)}: run `manage.py migrate` first.")
            # add(), not set(): permissions an admin granted on top of the demo ones stay.
            group.permissions.add(*permissions)
            groups[name] = group
        return groups

    def _user(self, spec: DemoUser, password: str, groups: dict[str, Group]) -> tuple[DemoUser, bool]:
        User = get_user_model()
        user = User.objects.filter(username=spec.username).first()
        created = user is None
        if user is None:
            if spec.superuser:
                user = User.objects.create_superuser(spec.username, email="", password=password)
            else:
                user = User.objects.create_user(spec.username, email="", password=password, is_staff=True)
            user.first_name = spec.first_name
            user.save(update_fields=["first_name"])
        if spec.group:
            user.groups.add(groups[spec.group])
        return spec, created

    def _memberships(self, inbox: Inbox) -> None:
        # Access follows inbox membership (conversations/access.py): without one, the demo
        # supervisor could not enter the admin and the attendants would see no conversation.
        User = get_user_model()
        roles = {SUPERVISORS: Membership.Role.SUPERVISOR, ATTENDANTS: Membership.Role.ATTENDANT}
        for spec in DEMO_USERS:
            if spec.group in roles:
                user = User.objects.get(username=spec.username)
                Membership.objects.get_or_create(user=user, inbox=inbox, defaults={"role": roles[spec.group]})

    def _conversations(self, inbox: Inbox) -> None:
        now = timezone.now()
        for chat in DEMO_CHATS:
            identity = services.Identity(wa_id=chat.wa_id, name=chat.name)
            # One transaction per chat: record_message locks the conversation row.
            with transaction.atomic():
                for item in chat.messages:
                    services.record_message(inbox, identity, _new_message(chat, item, now), history=True)

    def _counts(self) -> dict[str, int]:
        return {
            "customers": Customer.objects.count(),
            "conversations": Conversation.objects.count(),
            "messages": Message.objects.count(),
        }

    def _report(self, inbox: Inbox | None, users: list[tuple[DemoUser, bool]], password: str, created: dict) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS("Demo data ready."))
        write("Logins:")
        for spec, was_created in users:
            role = "superuser" if spec.superuser else spec.group
            if not was_created:
                write(f"  {spec.username}  (already existed, password unchanged; {role})")
            elif settings.PRODUCTION:
                # Never echo a production password into a terminal log.
                write(f"  {spec.username}  (password from DEMO_PASSWORD; {role})")
            else:
                write(f"  {spec.username} / {password}  ({role})")
        if not (settings.OTP_REQUIRED_FOR_STAFF_ROLES or settings.OTP_REQUIRED_FOR_EVERYONE):
            write("  Two-factor authentication is relaxed in this demo: optional, at /accounts/2fa/.")
        if settings.DEMO_ENABLED:
            # The demo's customer side (demo/phone.py): write as a customer there, answer here.
            write(f"Console:      {settings.SITE_URL}{reverse('console:index')}")
            write(f"Phone:        {settings.SITE_URL}{reverse('demo:phone')}  (a customer's WhatsApp, in another tab)")
        write(
            f"Created {created['customers']} customers, {created['conversations']} conversations, "
            f"{created['messages']} messages."
        )
        write(f"Admin:        {settings.SITE_URL}{reverse('admin:index')}")
        webhook_url = settings.SITE_URL + reverse("whatsapp-webhook")
        write(f"Webhook URL:  {webhook_url}")
        if inbox is None:
            write(self.style.WARNING("No default inbox: set WHATSAPP_PHONE_NUMBER_ID (and the other WHATSAPP_* vars)."))
        elif settings.PRODUCTION:
            write(f"Inbox:        {inbox} exists (credentials are not printed in production mode).")
        else:
            write(f"Inbox:        {inbox}")
            write(f"Verify token: {inbox.verify_token}")
            write(f"App secret:   {inbox.app_secret}")
            write("Post a signed sample, dated now:")
            write(f"  .venv/bin/python manage.py sign_webhook --now docs/samples/mensagem.json --post {webhook_url}")
