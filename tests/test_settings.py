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
    " 'pnid': s.WHATSAPP_PHONE_NUMBER_ID, 'app_secret': s.WHATSAPP_APP_SECRET, 'access_token': s.WHATSAPP_ACCESS_TOKEN,"
    " 'verify_token': s.WHATSAPP_VERIFY_TOKEN, 'secret_key': s.SECRET_KEY, 'cookies_secure': s.SESSION_COOKIE_SECURE,"
    " 'csrf_secure': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS, 'redirect': s.SECURE_SSL_REDIRECT,"
    " 'proxy_header': s.SECURE_PROXY_SSL_HEADER}))"
)
# Every variable these tests set or that changes the mode; the rest of the environment is kept.
MODE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "BEHIND_TLS_PROXY",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "WHATSAPP_PHONE_NUMBER_ID",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_VERIFY_TOKEN",
)
POSTGRES = "postgres://postgres@127.0.0.1:5432/atende"
REDIS = "redis://127.0.0.1:6379/3"
REAL_KEY = "k7Vq2-real-production-key-" + "x9" * 20
DEMO_KEY = "embedded-mode-insecure-secret-key-do-not-use-in-production"


def _run(code: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES}
    clean |= {"DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, *code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


def _settings_in(env: dict[str, str], *, prelude: str = "") -> subprocess.CompletedProcess:
    return _run(["-c", prelude + PROBE], env)


def test_it_runs_embedded_with_no_environment() -> None:
    result = _settings_in({})

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert {key: values[key] for key in ("engine", "layer", "eager", "debug", "tz", "lang", "broker", "production")} | {
        "upload": values["upload"],
        "pnid": values["pnid"],
    } == {
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
    assert values["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
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


# --- Defect 10: anything but the embedded mode is production -----------------------------------


@pytest.mark.parametrize(
    "services", [{"DATABASE_URL": POSTGRES}, {"REDIS_URL": REDIS}, {"DATABASE_URL": POSTGRES, "REDIS_URL": REDIS}]
)
def test_it_refuses_to_start_without_a_secret_key_outside_the_embedded_mode(services: dict[str, str]) -> None:
    # when: PostgreSQL without Redis (or the reverse), and no SECRET_KEY
    result = _settings_in(services)

    # then
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("services", [{"DATABASE_URL": POSTGRES}, {"REDIS_URL": REDIS}])
def test_it_uses_no_demo_secret_in_a_half_configured_deployment(services: dict[str, str]) -> None:
    result = _settings_in({**services, "SECRET_KEY": REAL_KEY})

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["production"] is True
    assert values["secret_key"] == REAL_KEY
    assert (values["pnid"], values["app_secret"], values["access_token"], values["verify_token"]) == ("", "", "", "")


def test_it_keeps_the_demo_credentials_in_the_embedded_mode() -> None:
    result = _settings_in({})

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["secret_key"] == DEMO_KEY
    assert values["app_secret"] == "demo-app-secret"
    assert (values["cookies_secure"], values["hsts"], values["redirect"]) == (False, 0, False)


def test_it_cannot_be_talked_into_the_demo_key_by_importing_pytest() -> None:
    # given: a production process that merely has pytest importable and imported (a plugin,
    # a debugging session) is not the test runner
    result = _settings_in({"DATABASE_URL": POSTGRES, "REDIS_URL": REDIS}, prelude="import pytest; ")

    # then
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    "services", [{"DATABASE_URL": POSTGRES}, {"REDIS_URL": REDIS}, {"DATABASE_URL": POSTGRES, "REDIS_URL": REDIS}]
)
def test_it_turns_on_https_outside_the_embedded_mode(services: dict[str, str]) -> None:
    result = _settings_in({**services, "SECRET_KEY": REAL_KEY})

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["cookies_secure"] is True
    assert values["csrf_secure"] is True
    assert values["hsts"] == 31_536_000
    assert values["redirect"] is True
    assert values["proxy_header"] is None


def test_it_trusts_the_tls_proxy_and_lets_it_do_the_redirect() -> None:
    result = _settings_in(
        {
            "DATABASE_URL": POSTGRES,
            "REDIS_URL": REDIS,
            "SECRET_KEY": REAL_KEY,
            "BEHIND_TLS_PROXY": "true",
            "SECURE_SSL_REDIRECT": "false",
        }
    )

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["redirect"] is False
    assert values["cookies_secure"] is True


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _sep, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_it_passes_the_deploy_check_with_the_production_values_of_env_example() -> None:
    # given: .env.example as shipped, with the values it says production must fill in
    env = {name: value for name, value in _env_example().items() if value}
    env |= {"DATABASE_URL": POSTGRES, "REDIS_URL": REDIS, "SECRET_KEY": REAL_KEY}

    # when
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
