from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from conversations.models import Conversation, Customer, Inbox, Membership


@pytest.fixture
def team(inbox: Inbox) -> SimpleNamespace:
    """An inbox with a supervisor and two attendants, another inbox with its own attendant,
    and a superuser who belongs to no inbox."""
    other_inbox = Inbox.objects.create(name="Filial", phone_number_id="PNID_B", app_secret="b-secret")
    people = SimpleNamespace(
        inbox=inbox,
        other_inbox=other_inbox,
        admin=User.objects.create_superuser("root"),
        supervisor=User.objects.create_user("renata", first_name="Renata", is_staff=True),
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
    """A conversation in a given state (rows written directly: this is the state under test)."""
    counter = iter(range(1, 10_000))

    def make(status: str = Conversation.Status.QUEUED, assignee: Any = None, **extra: Any) -> Conversation:
        customer = extra.pop("customer", None) or Customer.objects.create(
            wa_id=f"5511988{next(counter):06d}", name="Maria Silva"
        )
        closed = timezone.now() if status == Conversation.Status.CLOSED else None
        return Conversation.objects.create(
            inbox=extra.pop("inbox", inbox), customer=customer, status=status, assignee=assignee, closed=closed, **extra
        )

    return make
