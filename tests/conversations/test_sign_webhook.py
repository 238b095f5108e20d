"""sign_webhook --now: what the README tells a newcomer to post is dated now."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations.models import Conversation, Inbox, Message
from conversations.whatsapp.signature import verify

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "samples" / "mensagem.json"


def sign(*args: Any) -> str:
    out = StringIO()
    call_command("sign_webhook", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_it_stamps_the_sample_with_the_current_time(tmp_path: Path) -> None:
    # given
    output = tmp_path / "now.json"
    before = int(time.time())

    # when
    header = sign(str(SAMPLE), "--now", "--secret", "demo-app-secret", "--output", str(output))

    # then: the message is dated now, and the signature covers exactly the bytes written
    body = output.read_bytes()
    message = json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert before <= int(message["timestamp"]) <= int(time.time())
    assert message["id"] == "wamid.DEMO-README-0001"
    assert verify(body, header, ["demo-app-secret"])


def test_it_signs_the_file_byte_for_byte_without_now(tmp_path: Path) -> None:
    output = tmp_path / "same.json"

    header = sign(str(SAMPLE), "--secret", "demo-app-secret", "--output", str(output))

    assert output.read_bytes() == SAMPLE.read_bytes()
    assert verify(SAMPLE.read_bytes(), header, ["demo-app-secret"])


def test_it_refuses_to_stamp_a_body_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "body.txt"
    path.write_bytes(b"not json")

    with pytest.raises(CommandError, match="--now"):
        sign(str(path), "--now", "--secret", "s")


@pytest.mark.django_db
def test_it_gives_the_readme_sample_an_open_window_at_the_top_of_the_list(
    client: Any, settings: Any, tmp_path: Path
) -> None:
    # given: the demo inbox, and the sample stamped as the README says
    settings.WHATSAPP_APP_SECRET = "demo-app-secret"
    Inbox.objects.create(name="WhatsApp", phone_number_id="106540352242922", app_secret="demo-app-secret")
    output = tmp_path / "now.json"
    header = sign(str(SAMPLE), "--now", "--output", str(output))

    # when
    response = client.post(
        "/webhooks/whatsapp/",
        data=output.read_bytes(),
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=header,
    )

    # then
    assert response.status_code == 200
    message = Message.objects.get(wamid="wamid.DEMO-README-0001")
    assert abs((timezone.now() - message.wa_timestamp).total_seconds()) < 60
    assert Conversation.objects.get(pk=message.conversation_id).is_window_open()
