"""Fixtures for the reply pipeline's tests: rows written directly for the states under test.

Use with ``pytest_plugins = ["tests.bots.pipeline_support"]`` in a test module."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from conversations.models import Conversation, Customer, Inbox, Membership, Message
from tests.bots.pipeline_helpers import CUSTOMER_WA_ID, next_wamid


@pytest.fixture
def chat(inbox: Inbox) -> Conversation:
    """A conversation with the bot whose customer wrote a moment ago (rows written directly)."""
    customer = Customer.objects.create(wa_id=CUSTOMER_WA_ID, phone="+" + CUSTOMER_WA_ID, name="Maria Silva")
    return Conversation.objects.create(inbox=inbox, customer=customer, last_inbound=timezone.now())


@pytest.fixture
def line() -> Callable[..., Message]:
    """A customer's message row written directly (no signal, no task): the state under test."""

    def make(conversation: Conversation, text: str = "", *, created: datetime | None = None, **fields: Any) -> Message:
        message = Message.objects.create(
            conversation=conversation,
            direction=fields.pop("direction", Message.Direction.IN),
            sender_kind=fields.pop("sender_kind", Message.SenderKind.CUSTOMER),
            type=fields.pop("type", "text"),
            text=text,
            wamid=fields.pop("wamid", None) or next_wamid(),
            **fields,
        )
        if created is not None:
            Message.objects.filter(pk=message.pk).update(created=created)
            message.created = created
        Conversation.objects.filter(pk=conversation.pk).update(last_inbound=timezone.now())
        return message

    return make


@pytest.fixture
def attendant(inbox: Inbox) -> User:
    user = User.objects.create_user("ana", first_name="Ana")
    Membership.objects.create(user=user, inbox=inbox, role=Membership.Role.ATTENDANT)
    return user
