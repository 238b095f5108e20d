from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from conversations.models import Inbox
from conversations.whatsapp.signature import sign

# The `layer` fixture (a fresh channel layer per test) for any test that listens to groups.
pytest_plugins = ["tests.layer_support"]

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
# The shared acceptance material sits beside the repository on developer machines and in CI.
SHARED_PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "whatsapp" / "payloads"

TEST_SECRET = "test-secret"
TEST_PNID = "TEST_PNID"

# In CI every test that needs PostgreSQL or Redis must run: a missing service is an error there,
# a skip only on a laptop without them.
REQUIRE_SERVICES = os.environ.get("CI") == "true" or os.environ.get("ATENDE_REQUIRE_SERVICES") == "1"
HAS_POSTGRES = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
HAS_REDIS = bool(django_settings.REDIS_URL)


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_SERVICES and not (HAS_POSTGRES and HAS_REDIS):
        raise pytest.UsageError("CI needs DATABASE_URL (PostgreSQL) and REDIS_URL set: refusing to skip their tests.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres") and not HAS_POSTGRES:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if item.get_closest_marker("redis") and not HAS_REDIS:
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))


@pytest.fixture(autouse=True)
def celery_eager(settings: Any) -> Iterator[None]:
    """Tasks run inline in tests unless a test says otherwise (the broker-down tests do)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _bot_config_read_every_turn(settings: Any) -> None:
    """Tests change a bot's configuration with queryset updates (no signal) between turns: each
    turn reads it fresh, unless a test sets a cache time (tests/bots/test_pipeline.py does)."""
    from bots import services

    settings.BOT_CONFIG_CACHE_SECONDS = 0
    services.forget_configs()


@pytest.fixture(autouse=True)
def _fresh_secret_cache() -> None:
    from conversations import views

    views._secrets.reset()


@pytest.fixture(autouse=True)
def _fresh_notify_clock() -> None:
    """Each test's first stored event notifies, whatever an earlier test stored just before."""
    from conversations.whatsapp import store

    store.forget_last_notify()


@pytest.fixture
def inbox(db: None) -> Inbox:
    return Inbox.objects.create(
        name="Test",
        phone_number_id=TEST_PNID,
        display_number="5511900000000",
        waba_id="TEST_WABA",
        access_token="test-token",
        app_secret=TEST_SECRET,
        verify_token="test-verify",
    )


def rewrite_sample(data: Any, prefix: str, phone_number_id: str = TEST_PNID) -> Any:
    """Give a sample's ids a unique prefix and route it to the test inbox (see
    shared/whatsapp/README.md: many libraries' samples share ids and phone numbers)."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in ("id", "message_id", "original_message_id") and isinstance(value, str):
                out[key] = prefix + value
            elif key == "phone_number_id" and isinstance(value, str):
                out[key] = phone_number_id
            else:
                out[key] = rewrite_sample(value, prefix, phone_number_id)
        return out
    if isinstance(data, list):
        return [rewrite_sample(item, prefix, phone_number_id) for item in data]
    return data


def load_sample(name: str, *, prefix: str | None = None, folder: Path = FIXTURES) -> dict:
    data = json.loads((folder / name).read_text())
    return rewrite_sample(data, prefix if prefix is not None else f"{name[:2]}.")


@pytest.fixture
def post_webhook(client: Any) -> Callable[..., Any]:
    """POST bytes (or a JSON-able object) signed like Meta does, over the exact bytes sent."""

    def post(body: bytes | dict, *, secret: str | None = TEST_SECRET, signature: str | None = None) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {}
        if signature is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        elif secret is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(raw, secret)
        return client.post("/webhooks/whatsapp/", data=raw, content_type="application/json", **headers)

    return post


def envelope(value: dict, *, phone_number_id: str = TEST_PNID) -> dict:
    """A webhook body as Meta sends it, around one change's value."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "TEST_WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "5511900000000", "phone_number_id": phone_number_id},
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def text_payload(
    wamid: str,
    body: str = "Olá",
    *,
    wa_id: str = "5511987654321",
    name: str = "Maria Silva",
    timestamp: int = 1_750_000_000,
    phone_number_id: str = TEST_PNID,
) -> dict:
    message = {"from": wa_id, "id": wamid, "timestamp": str(timestamp), "type": "text", "text": {"body": body}}
    return envelope(
        {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]},
        phone_number_id=phone_number_id,
    )


def status_payload(wamid: str, status: str, timestamp: int, *, errors: list | None = None, **extra: Any) -> dict:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": "5511987654321",
        **extra,
    }
    if errors:
        item["errors"] = errors
    return envelope({"statuses": [item]})


@pytest.fixture
def english(settings: Any) -> Iterator[None]:
    """For tests that assert user-facing text: the msgids are English, the default is pt-BR.
    LANGUAGE_CODE too, because each test-client request activates the request's language."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@contextmanager
def broker_down() -> Iterator[None]:
    """A real (not eager) Celery whose broker is a port where nothing listens."""
    from config.celery import app

    def point_at(url: str) -> None:
        app.conf.broker_url = url
        # Only the connection pools go (what app.close() does without deregistering the app: a
        # deregistered app never gets the shared tasks of modules imported after, bots.tasks say).
        app._pool = None
        # The producer pool keeps connections to the old URL too.
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.task_always_eager = False
    point_at("redis://127.0.0.1:9/0")
    try:
        yield
    finally:
        point_at(previous)
        app.conf.task_always_eager = True
