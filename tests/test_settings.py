"""Settings come from the environment: embedded default without it, production with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
    " 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'debug': s.DEBUG, 'tz': s.TIME_ZONE, 'lang': s.LANGUAGE_CODE,"
    " 'broker': s.CELERY_BROKER_URL, 'production': s.PRODUCTION, 'upload': s.DATA_UPLOAD_MAX_MEMORY_SIZE,"
    " 'pnid': s.WHATSAPP_PHONE_NUMBER_ID}))"
)


def _settings_in(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")}
    clean |= {"DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_it_runs_embedded_with_no_environment() -> None:
    result = _settings_in({})

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "engine": "django.db.backends.sqlite3",
        "layer": "channels.layers.InMemoryChannelLayer",
        "eager": True,
        "debug": False,
        "tz": "America/Sao_Paulo",
        "lang": "pt-br",
        "broker": "memory://",
        "production": False,
        "upload": values["upload"],
        "pnid": "106540352242922",
    }
    assert values["upload"] > 3 * 1024 * 1024


def test_it_switches_to_production_with_database_and_redis_urls() -> None:
    result = _settings_in(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/atende",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "SECRET_KEY": "x" * 50,
        }
    )

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["eager"] is False
    assert values["broker"] == "redis://127.0.0.1:6379/3"
    assert values["production"] is True
    assert values["debug"] is False
    # no demo credentials in production
    assert values["pnid"] == ""


@pytest.mark.parametrize("secret", [None, "short", "embedded-mode-insecure-secret-key-do-not-use-in-production"])
def test_it_refuses_to_start_in_production_without_a_real_secret_key(secret: str | None) -> None:
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/atende", "REDIS_URL": "redis://127.0.0.1:6379/3"}
    if secret is not None:
        env["SECRET_KEY"] = secret

    result = _settings_in(env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_it_fails_loudly_on_a_malformed_value() -> None:
    result = _settings_in({"DEBUG": "maybe"})

    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr
