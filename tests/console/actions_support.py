"""Fixtures for the console's actions and composer tests (tests/console/test_actions.py,
test_composer.py): a team of one inbox, conversations in a given state, logged-in clients."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from conversations.models import Conversation, Customer, Inbox, Membership, Message
from handoffs.models import OwnershipChange

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def team(inbox: Inbox) -> SimpleNamespace:
    """The test inbox with a supervisor and two attendants, another inbox with its own
    attendant, and a superuser who belongs to no inbox."""
    other_inbox = Inbox.objects.create(name="Filial", phone_number_id="PNID_B", app_secret="b-secret")
    people = SimpleNamespace(
        inbox=inbox,
        other_inbox=other_inbox,
        admin=User.objects.create_superuser("root"),
        supervisor=User.objects.create_user("renata", first_name="Renata"),
        ana=User.objects.create_user("ana", first_name="Ana"),
        bruno=User.objects.create_user("bruno", first_name="Bruno"),
        outsider=User.objects.create_user("olga", first_name="Olga"),
    )
    Membership.objects.create(user=people.supervisor, inbox=inbox, role=Membership.Role.SUPERVISOR)
    Membership.objects.create(user=people.ana, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.bruno, inbox=inbox, role=Membership.Role.ATTENDANT)
    Membership.objects.create(user=people.outsider, inbox=other_inbox, role=Membership.Role.ATTENDANT)
    return people


@pytest.fixture
def make_conversation(inbox: Inbox) -> Callable[..., Conversation]:
    """A conversation in a given state; the customer wrote an hour ago (window open) unless
    ``last_inbound`` says otherwise."""
    counter = iter(range(1, 10_000))

    def make(status: str = Conversation.Status.QUEUED, assignee: Any = None, **extra: Any) -> Conversation:
        n = next(counter)
        customer = extra.pop("customer", None) or Customer.objects.create(
            wa_id=f"5511988{n:06d}", phone=f"+5511988{n:06d}", name="Maria Silva"
        )
        closed = timezone.now() if status == Conversation.Status.CLOSED else None
        extra.setdefault("last_inbound", timezone.now() - timedelta(hours=1))
        return Conversation.objects.create(
            inbox=extra.pop("inbox", inbox), customer=customer, status=status, assignee=assignee, closed=closed, **extra
        )

    return make


@pytest.fixture
def login() -> Callable[[User], Client]:
    """A client logged in as ``user``, with a verified second factor (supervisors and admins
    need one wherever the setting requires it; these tests are about the actions)."""

    def make(user: User, **kwargs: Any) -> Client:
        client = Client(**kwargs)
        client.force_login(user)
        device, _created = TOTPDevice.objects.get_or_create(user=user, name="test", defaults={"confirmed": True})
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
        return client

    return make


def state(conversation: Conversation) -> tuple[Any, ...]:
    """Everything an action may change on a conversation, to assert a refusal changed nothing."""
    fresh = Conversation.objects.get(pk=conversation.pk)
    return (
        fresh.status,
        fresh.assignee_id,
        fresh.closed,
        fresh.resolution,
        sorted(fresh.labels.values_list("pk", flat=True)),
        fresh.customer.notes,
        Message.objects.filter(conversation=fresh).count(),
        OwnershipChange.objects.filter(conversation=fresh).count(),
    )
