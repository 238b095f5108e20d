"""The phone's pages themselves: picking or creating a customer, and what the page may contain."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import Inbox
from tests.demo.conftest import PNID, SECRET, TOKEN, WABA

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_inbox(db: None, settings: Any) -> Inbox:
    settings.DEMO_ENABLED = True
    settings.WHATSAPP_PHONE_NUMBER_ID = PNID
    return Inbox.objects.create(
        name="Clínica Sorriso", phone_number_id=PNID, waba_id=WABA, access_token=TOKEN, app_secret=SECRET
    )


def test_it_lists_the_inbox_customers_to_pick_from(client: Any, demo_inbox: Inbox) -> None:
    # given
    services.record_message(
        demo_inbox,
        services.Identity(wa_id="5511987650001", name="Mariana Souza"),
        services.NewMessage(
            wamid="wamid.PICK-1", type="text", timestamp=timezone.now(), text="Oi", content={"body": "Oi"}
        ),
    )

    # when
    response = client.get("/demo/phone/")

    # then
    assert response.status_code == 200
    assert "Mariana Souza" in response.text
    assert "/demo/phone/?wa_id=5511987650001&amp;name=Mariana+Souza" in response.text


def test_it_starts_a_new_customer_from_a_typed_number(client: Any, demo_inbox: Inbox) -> None:
    # when: a Brazilian number typed with its area code only
    response = client.get("/demo/phone/", {"name": "Paula Lima", "number": "(11) 98765-4321"})

    # then: the country code is added
    assert response.status_code == 302
    assert response["Location"] == "/demo/phone/?wa_id=5511987654321&name=Paula+Lima"


def test_it_refuses_a_number_too_short(client: Any, demo_inbox: Inbox, english: None) -> None:
    # when
    response = client.get("/demo/phone/", {"name": "Paula", "number": "1234"})

    # then
    assert response.status_code == 400
    assert "Type a phone number with its area code" in response.text


def test_it_escapes_the_customer_name_and_has_no_inline_script(client: Any, demo_inbox: Inbox) -> None:
    # when
    response = client.get("/demo/phone/", {"wa_id": "5511987654321", "name": "<script>alert(1)</script>"})

    # then
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", response.text) == []


def test_it_says_when_there_is_no_inbox(client: Any, settings: Any, db: None) -> None:
    # given
    settings.DEMO_ENABLED = True

    # when
    response = client.get("/demo/phone/")

    # then
    assert response.status_code == 404
    assert "seed_demo" in response.text


def test_it_shows_whatsapp_formatting_and_escapes_markup(client: Any, demo_inbox: Inbox) -> None:
    # given: a message with WhatsApp's emphasis and some markup
    identity = services.Identity(wa_id="5511987650009", name="Rita")
    services.record_message(
        demo_inbox,
        identity,
        services.NewMessage(
            wamid="wamid.FMT-1",
            type="text",
            timestamp=timezone.now(),
            text="*Escova* por _R$ 180_ <img src=x onerror=alert(1)>",
            content={"body": "x"},
        ),
    )

    # when
    response = client.get("/demo/phone/", {"wa_id": "5511987650009", "name": "Rita"})

    # then: bold and italic are shown as such, the markup as text
    assert "<strong>Escova</strong>" in response.text
    assert "<em>R$ 180</em>" in response.text
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text
