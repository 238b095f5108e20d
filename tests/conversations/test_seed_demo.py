"""seed_demo's conversations are recent: they sort first and their 24-hour windows are open."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Conversation, Message


def embedded_demo(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded mode's demo inbox settings, as `make run` has them."""
    settings.PRODUCTION = False
    settings.WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
    settings.WHATSAPP_APP_SECRET = "demo-app-secret"
    settings.WHATSAPP_ACCESS_TOKEN = "demo-access-token"
    settings.WHATSAPP_VERIFY_TOKEN = "demo-verify-token"
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


@pytest.mark.django_db
def test_it_seeds_conversations_dated_just_now(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the embedded mode's demo inbox
    embedded_demo(settings, monkeypatch)

    # when
    out = StringIO()
    call_command("seed_demo", stdout=out)

    # then
    now = timezone.now()
    times = list(Message.objects.values_list("wa_timestamp", flat=True))
    assert times
    assert all(now - timedelta(hours=4) <= moment <= now for moment in times)
    assert all(conversation.is_window_open() for conversation in Conversation.objects.all())
    assert "sign_webhook --now docs/samples/mensagem.json" in out.getvalue()


@pytest.mark.django_db
def test_its_sample_chats_are_history_the_bot_does_not_answer(
    settings: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the embedded mode's demo inbox (its bot answers new customer messages)
    embedded_demo(settings, monkeypatch)
    from bots.models import BotRun

    # when
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=StringIO())

    # then: the chats are as written (their replies included), nothing new was sent
    assert BotRun.objects.count() == 0
    assert not Message.objects.filter(direction=Message.Direction.OUT, status=Message.Status.PENDING).exists()
    assert not Message.objects.filter(direction=Message.Direction.OUT, wamid__isnull=True).exists()
