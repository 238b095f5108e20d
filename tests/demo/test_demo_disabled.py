"""Outside the embedded mode the demo does not exist: every one of its URLs is a 404, and the
settings never point the Graph API at it."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from demo.network import Media, network

ROOT = Path(__file__).resolve().parents[2]

URLS = [
    ("get", "/demo/phone/"),
    ("get", "/demo/phone/?wa_id=5511987650042&name=Maria"),
    ("get", "/demo/phone/chat/?wa_id=5511987650042"),
    ("post", "/demo/phone/send/"),
    ("get", "/demo/phone/media/1/"),
    ("post", "/demo/graph/v24.0/DEMO_TEST_PNID/messages"),
    ("post", "/demo/graph/v24.0/DEMO_TEST_PNID/media"),
    ("get", "/demo/graph/v24.0/1000000000000001"),
    ("get", "/demo/graph/v24.0/DEMO_TEST_WABA/message_templates"),
    ("get", "/demo/graph/files/1000000000000001/?hash=x"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), URLS)
def test_it_answers_404_everywhere_when_the_demo_is_off(client: Any, settings: Any, method: str, url: str) -> None:
    # given: a file the stand-in holds, so a 404 is not just "not found"
    settings.DEMO_ENABLED = False
    network.add_media(Media(id="1000000000000001", content=b"x", mime_type="image/png"))

    # when
    response = getattr(client, method)(url, HTTP_AUTHORIZATION="Bearer demo-test-token")

    # then
    assert response.status_code == 404
    network.reset()


def _settings_in(env: dict[str, str]) -> list[str]:
    code = "from config import settings as s; print(s.DEMO_ENABLED); print(s.WHATSAPP_GRAPH_URL)"
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "WHATSAPP_", "DEMO_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_it_is_off_in_production_mode() -> None:
    # when: DATABASE_URL and REDIS_URL set, even with DEMO_ENABLED asked for
    lines = _settings_in(
        {
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "SECRET_KEY": "a-production-secret-key-of-at-least-32-characters",
            "DEMO_ENABLED": "true",
        }
    )

    # then
    assert lines == ["False", "https://graph.facebook.com/v24.0"]


def test_it_points_the_embedded_mode_at_its_own_stand_in() -> None:
    # when
    lines = _settings_in({"SITE_URL": "http://127.0.0.1:8123"})

    # then
    assert lines == ["True", "http://127.0.0.1:8123/demo/graph/v24.0"]


@pytest.mark.django_db
def test_it_prints_the_phone_next_to_the_logins(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given (the production-mode run of the suite needs a real password for the demo logins)
    monkeypatch.setenv("DEMO_PASSWORD", "Vx7-quinta-feira-9h30-Paulista")
    settings.DEMO_ENABLED = True
    settings.SITE_URL = "http://127.0.0.1:8123"
    out = StringIO()

    # when
    call_command("seed_demo", stdout=out)

    # then
    lines = out.getvalue().splitlines()
    assert "Phone:        http://127.0.0.1:8123/demo/phone/  (a customer's WhatsApp, in another tab)" in lines
    assert "Console:      http://127.0.0.1:8123/console/" in lines
