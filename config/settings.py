"""Atende settings: one file, every knob from the environment (documented in .env.example).

With no environment at all the project runs in the embedded mode: SQLite, the in-memory
channel layer, eager Celery tasks and demo WhatsApp credentials. Setting DATABASE_URL and
REDIS_URL switches to production mode: PostgreSQL, channels-redis and real Celery workers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    # An empty variable (as copied from .env.example) means "use the default".
    return os.environ.get(name) or default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
# The embedded mode (SQLite, in-memory layer, inline tasks, demo credentials) is the only one
# with public defaults, and only with neither service configured. Anything else is treated as
# production: a half-configured deployment (DATABASE_URL without REDIS_URL) is still reachable
# from the internet, so it gets no public SECRET_KEY, no demo secrets and HTTPS.
EMBEDDED = not (DATABASE_URL or REDIS_URL)
PRODUCTION = not EMBEDDED
# pytest is the test runner (Makefile, CI) and is the program actually running, not merely
# importable: no production process (gunicorn, daphne, celery, manage.py) can be mistaken for it.
_PROGRAM = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
RUNNING_TESTS = "pytest" in sys.modules and (
    _PROGRAM.name in ("pytest", "py.test") or (_PROGRAM.name == "__main__.py" and _PROGRAM.parent.name == "pytest")
)

DEBUG = env_bool("DEBUG", False)

_INSECURE_KEY = "embedded-mode-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if PRODUCTION and not SECRET_KEY and RUNNING_TESTS:
    # The suite runs against PostgreSQL and Redis without a SECRET_KEY in its environment: it
    # gets a key nobody knows, never the public embedded one.
    import secrets

    SECRET_KEY = "tests-" + secrets.token_urlsafe(48)
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DATABASE_URL or REDIS_URL is set (only the embedded mode, with neither, "
            "runs on the public demo key)."
        )
    SECRET_KEY = _INSECURE_KEY
elif PRODUCTION and (len(SECRET_KEY) < 32 or SECRET_KEY == _INSECURE_KEY):
    raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 32 characters in production mode.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI's files for /api/docs/, served by us (no CDN).
    "drf_spectacular_sidecar",
    "django_otp",
    # Portuguese names for the admin sections of these four (config/apps.py).
    "config.apps.StaticTokensConfig",
    "config.apps.TOTPConfig",
    "config.apps.AxesConfig",
    "config.apps.BeatConfig",
    "conversations",
    "handoffs",
    "bots",
    "lgpd",
    "analytics",
    "console",
    "demo",
]
# The Graph API stand-in and the customer's phone (/demo/phone/) answer only in the embedded
# mode (the app is installed everywhere so its templates exist; its views 404 unless enabled).
DEMO_ENABLED = not PRODUCTION and env_bool("DEMO_ENABLED", True)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # pt-BR unless the user picked another language: never from Accept-Language.
    "config.middleware.UserLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Memberships read once per request (conversations.access.remembering_roles).
    "config.middleware.AccessScopeMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Idle timeout and the second factor (after OTP, which tells whether the session is verified).
    "config.security.SessionSecurityMiddleware",
    # CSP, Permissions-Policy on every response.
    "config.security.SecurityHeadersMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Axes must be last: it reads the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
if DATABASE_URL:
    import dj_database_url

    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env_bool("DB_JIT", False):
        # PostgreSQL compiles a query to machine code when its estimated cost is high; a
        # console search walking a list is estimated high (its per-row check) and ran in 75 ms,
        # after 700 ms of compiling. Short, frequent queries never gain from it.
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c jit=off".strip()
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # WAL and a busy timeout let the webhook, the eager tasks and the admin share the file.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery, cache ----------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Redis pub/sub: an event is one PUBLISH, delivered once to each process subscribed
            # to its group (the console subscribes once per process and group: console/fanout.py),
            # with no per-channel lists to pop or expire. Lost events (Redis restarting, a process
            # not subscribed yet) are what the console's sync repairs, as with the core layer.
            # channels_redis.core.RedisChannelLayer also works: docs/benchmarks.md compares them.
            "BACKEND": env_str("CHANNEL_LAYER_BACKEND", "channels_redis.pubsub.RedisPubSubChannelLayer"),
            # socket_timeout above channels-redis's 5 s blocking read: redis-py 8 defaults to 5 s
            # too, and an idle consumer's read then fails and drops its socket (channels_redis#422).
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": env_str("CHANNELS_PREFIX", "atende"),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "atende",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
# Without a broker the embedded mode runs every task inline, in the request that queued it.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after every task unless
# this is set (then every this many tasks): a new PostgreSQL connection per webhook batch, send
# and bot turn. Set out of reach; config/celery.py applies Django's own rules between tasks
# instead (DB_CONN_MAX_AGE, a connection that failed is dropped, a kept one is checked first).
CELERY_DB_REUSE_MAX = 2**31
# A webhook must be answered even when the broker is down: fail a publish fast (the event is
# already committed and the dispatcher picks it up) instead of retrying inside the request.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0),
    "socket_timeout": 5,
    "retry_on_timeout": False,
    "max_retries": 0,
    # Unacked tasks come back after this many seconds if a worker dies (acks_late).
    "visibility_timeout": 3600,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# One queue per kind of work, each consumed by its own worker in compose.yaml, so a slow one
# never starves another: LLM calls (bots) take seconds, sends and downloads wait on Meta, and
# webhook processing must start within milliseconds. "dispatch" is beat's per-second sweep,
# consumed by the webhook worker (only it needs it, and it never waits behind sends); the
# other periodic sweeps use the default queue "celery", consumed by the sending worker.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "conversations.tasks.process_webhooks": {"queue": "webhooks"},
    "conversations.tasks.process_webhook_event": {"queue": "webhooks"},
    "conversations.tasks.dispatch_webhook_events": {"queue": "dispatch"},
    "conversations.tasks.send_message": {"queue": "sending"},
    "conversations.tasks.mark_message_read": {"queue": "sending"},
    "conversations.tasks.sync_message_templates": {"queue": "sending"},
    "conversations.tasks.download_media": {"queue": "media"},
    "bots.tasks.*": {"queue": "bots"},
    "handoffs.tasks.*": {"queue": "celery"},
}
WEBHOOK_DISPATCH_SECONDS = env_float("WEBHOOK_DISPATCH_SECONDS", 1.0)
# Webhook processing commits without waiting for the disk (conversations/processing.py says
# why that loses nothing: the stored events are the durable input, applied again after a crash).
WEBHOOK_PROCESSING_ASYNC_COMMIT = env_bool("WEBHOOK_PROCESSING_ASYNC_COMMIT", True)

# --- Bots and handoffs --------------------------------------------------------------------
# A bot turn holds its conversation this long at most (longer than any provider timeout); a
# turn whose worker died is taken over by the sweep after it.
BOT_LEASE_SECONDS = env_float("BOT_LEASE_SECONDS", 120.0)
BOT_SWEEP_SECONDS = env_float("BOT_SWEEP_SECONDS", 30.0)
# How long a process keeps an inbox's bot configuration for its turns (bots.services.turn_config):
# a change saved in the admin reaches the other processes within this time; 0 reads it every turn.
BOT_CONFIG_CACHE_SECONDS = env_float("BOT_CONFIG_CACHE_SECONDS", 5.0)
# How long a waiting customer goes without news before being told again where they stand.
HANDOFF_WAIT_NOTICE_MINUTES = env_float("HANDOFF_WAIT_NOTICE_MINUTES", 15.0)
# An attendant who goes offline or away keeps their unanswered conversations this long.
HANDOFF_OFFLINE_GRACE_MINUTES = env_float("HANDOFF_OFFLINE_GRACE_MINUTES", 5.0)
HANDOFF_ASSIGN_SECONDS = env_float("HANDOFF_ASSIGN_SECONDS", 30.0)


def _expiring(seconds: float) -> dict[str, float]:
    """Every periodic task expires: a sweep that could not run in time (worker dead or busy)
    is dropped rather than piling up behind the next ones, which do the same work.
    django-celery-beat's DatabaseScheduler reads only ``expire_seconds`` (and drops
    ``expires``); Celery's own scheduler passes ``expires`` to the task."""
    return {"expires": seconds, "expire_seconds": seconds}


CELERY_BEAT_SCHEDULE = {
    # The safety net behind the listener (manage.py listen_webhooks): wakes the webhook
    # workers when events are due.
    "dispatch-webhook-events": {
        "task": "conversations.tasks.dispatch_webhook_events",
        "schedule": WEBHOOK_DISPATCH_SECONDS,
        "options": _expiring(max(2.0, 2 * WEBHOOK_DISPATCH_SECONDS)),
    },
    "sweep-media-downloads": {
        "task": "conversations.tasks.sweep_media_downloads",
        "schedule": 300.0,
        "options": _expiring(240.0),
    },
    "sweep-unconfirmed-sends": {
        "task": "conversations.tasks.sweep_outbound_messages",
        "schedule": 60.0,
        "options": _expiring(50.0),
    },
    # Retention: empties old webhook bodies in batches (manage.py purge_webhook_bodies by hand).
    "purge-webhook-bodies": {
        "task": "conversations.tasks.purge_webhook_bodies",
        "schedule": 3600.0,
        "options": _expiring(1800.0),
    },
    # Message templates from Meta, per inbox (manage.py sync_templates by hand; the admin too).
    "sync-message-templates": {
        "task": "conversations.tasks.sync_message_templates",
        "schedule": 3600.0,
        "options": _expiring(1800.0),
    },
    # Customer messages in bot-owned conversations left without a reply or a decision (a worker
    # died mid-turn, the broker lost the task): answered late rather than never.
    "sweep-bot-replies": {
        "task": "bots.tasks.sweep_unanswered",
        "schedule": BOT_SWEEP_SECONDS,
        "options": _expiring(BOT_SWEEP_SECONDS),
    },
    # Customers waiting long in the queue are told again where they stand.
    "sweep-wait-notices": {
        "task": "bots.tasks.send_wait_notices",
        "schedule": 60.0,
        "options": _expiring(50.0),
    },
    # Automatic assignment of the queue to online attendants with room (also run right after
    # each handoff and presence change), and unanswered conversations of attendants who went
    # offline returned to the queue after the grace.
    "assign-queue": {
        "task": "handoffs.tasks.assign_queue",
        "schedule": HANDOFF_ASSIGN_SECONDS,
        "options": _expiring(HANDOFF_ASSIGN_SECONDS),
    },
    "return-from-offline": {
        "task": "handoffs.tasks.return_from_offline",
        "schedule": 60.0,
        "options": _expiring(50.0),
    },
}

# --- Auth ---------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Staff log in to the console (console/accounts.py); the admin keeps its own login page, and
# the second factor (config/security.py) applies to both.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "login"
# Lockouts (django-axes): failures are counted per username (from any address) and per IP
# address (for any username), each against its own limit (config/security.AxesHandler). One
# person mistyping their password locks only their username, not the whole office behind the
# same NAT address; one address trying many usernames is locked after AXES_IP_FAILURE_LIMIT.
AXES_HANDLER = "config.security.AxesHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_IP_FAILURE_LIMIT = env_int("AXES_IP_FAILURE_LIMIT", 50)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_HOURS", 1.0)
# The pt-BR lockout page (templates/registration/lockout.html).
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env_bool("AXES_ENABLED", True)
# Behind the TLS proxy every request comes from the proxy's address: the client's is the last
# X-Forwarded-For entry (the one the proxy appended; earlier ones are the client's to forge).
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"
# Two-factor authentication (TOTP, django-otp; enrollment at /accounts/2fa/): required for
# superusers and supervisors in production, optional elsewhere unless OTP_REQUIRED_FOR_EVERYONE.
# The embedded demo relaxes it (seed_demo says so where it prints the logins).
OTP_TOTP_ISSUER = "Atende"
# pytest (only pytest, see RUNNING_TESTS) runs without it, like SECURE_SSL_REDIRECT: the
# tests of the second factor turn it on themselves.
OTP_REQUIRED_FOR_STAFF_ROLES = env_bool("OTP_REQUIRED_FOR_STAFF_ROLES", PRODUCTION and not RUNNING_TESTS)
OTP_REQUIRED_FOR_EVERYONE = env_bool("OTP_REQUIRED_FOR_EVERYONE", False)
# Backup codes shown once at enrollment (each works once, in place of a TOTP code).
OTP_BACKUP_CODES = 10
# Sessions: logged out after SESSION_IDLE_MINUTES without a request, and after SESSION_MAX_HOURS
# in any case (a workday); a password change logs every other session out (Django checks the
# password hash stored in each session).
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 60)
SESSION_COOKIE_AGE = env_int("SESSION_MAX_HOURS", 12) * 3600
SESSION_COOKIE_SAMESITE = "Lax"

# --- I18N ---------------------------------------------------------------------------------
LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Brazilian Portuguese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Short numeric dates for pt-BR (config/formats/pt_BR/formats.py); other languages keep Django's.
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = env_str("TIME_ZONE", "America/Sao_Paulo")
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Pages work without collectstatic in the embedded mode.
WHITENOISE_USE_FINDERS = True

# --- Security -----------------------------------------------------------------------------
# Outside the embedded mode the app is served over HTTPS (Meta only calls https:// webhooks):
# secure cookies, HSTS and the redirect are on unless turned off explicitly.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a proxy that terminates TLS, Django sees plain HTTP: without this header every
# request would look insecure and the redirect would loop. Only set it when the proxy
# overwrites X-Forwarded-Proto (a client could otherwise claim HTTPS).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
# The test client speaks plain HTTP; pytest (and only pytest, see RUNNING_TESTS) runs without it.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION and not RUNNING_TESTS)
if PRODUCTION and not SECURE_SSL_REDIRECT and not RUNNING_TESTS:
    # Turned off on purpose because the proxy in front already redirects HTTP to HTTPS.
    SILENCED_SYSTEM_CHECKS = ["security.W008"]
# Health checks of compose and load balancers call the container over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Every HTML response carries a Content-Security-Policy with no inline scripts
# (config/security.SecurityHeadersMiddleware adds the websocket origin to connect-src).
# Styles: files only, but style="" attributes are allowed (the admin and a few widgets set
# them; they cannot run code).
CSP_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "style-src-attr": "'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "media-src": "'self' blob:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# The documented exceptions, by path prefix. Swagger UI (/api/docs/) injects <style> elements;
# its scripts are files. (The admin needs none: only django-celery-beat's periodic task form
# has an inline script, a preview of the crontab in words, and the form works without it.)
CSP_PATH_OVERRIDES = {"/api/docs/": {"style-src": "'self' 'unsafe-inline'"}}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"

# --- WhatsApp Cloud API -----------------------------------------------------------------
# Demo credentials for the embedded mode only (never with DATABASE_URL or REDIS_URL); the ids
# are the ones in Meta's documentation examples, so the samples from the docs route to the
# demo inbox.
WHATSAPP_PHONE_NUMBER_ID = env_str("WHATSAPP_PHONE_NUMBER_ID", "106540352242922" if EMBEDDED else "")
WHATSAPP_DISPLAY_NUMBER = env_str("WHATSAPP_DISPLAY_NUMBER", "15550783881" if EMBEDDED else "")
WHATSAPP_WABA_ID = env_str("WHATSAPP_WABA_ID", "102290129340398" if EMBEDDED else "")
WHATSAPP_ACCESS_TOKEN = env_str("WHATSAPP_ACCESS_TOKEN", "demo-access-token" if EMBEDDED else "")
WHATSAPP_APP_SECRET = env_str("WHATSAPP_APP_SECRET", "demo-app-secret" if EMBEDDED else "")
WHATSAPP_VERIFY_TOKEN = env_str("WHATSAPP_VERIFY_TOKEN", "demo-verify-token" if EMBEDDED else "")
WHATSAPP_INBOX_NAME = env_str("WHATSAPP_INBOX_NAME", "WhatsApp")
# The embedded mode talks to the app's own Graph API stand-in (demo/graph.py), so nothing
# reaches Meta and the console's sends succeed. Not under pytest: a test that sends without a
# fake Graph API must not reach a `make run` that happens to listen on SITE_URL.
WHATSAPP_GRAPH_URL = env_str(
    "WHATSAPP_GRAPH_URL",
    f"{SITE_URL}/demo/graph/v24.0" if DEMO_ENABLED and not RUNNING_TESTS else "https://graph.facebook.com/v24.0",
).rstrip("/")
WHATSAPP_HTTP_TIMEOUT = env_float("WHATSAPP_HTTP_TIMEOUT", 15.0)
# A send whose answer was lost (timeout) waits this long for a status webhook that carries
# our callback data; then it is marked unconfirmed for a person to decide (never sent again
# automatically); see conversations/delivery.py.
WHATSAPP_SEND_CONFIRM_SECONDS = env_int("WHATSAPP_SEND_CONFIRM_SECONDS", 180)
WHATSAPP_SEND_MAX_ATTEMPTS = env_int("WHATSAPP_SEND_MAX_ATTEMPTS", 8)
WHATSAPP_MEDIA_MAX_ATTEMPTS = env_int("WHATSAPP_MEDIA_MAX_ATTEMPTS", 6)
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 3 * 1024 * 1024)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 10)
# Days a processed (or rejected) webhook body is kept before beat empties it
# (conversations/retention.py); flagged and failed events keep theirs until handled.
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30)
# Processing (conversations/processing.py, dispatch.py): events claimed per transaction; how
# long one wake-up keeps claiming before it hands over; how many wake-ups the listener and the
# sweep keep queued (about the webhook worker's concurrency); how many claims without an
# outcome (the worker died) before an event is given up with an alert.
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 20)
WEBHOOK_LOOP_SECONDS = env_float("WEBHOOK_LOOP_SECONDS", 5.0)
WEBHOOK_WAKEUPS = env_int("WEBHOOK_WAKEUPS", 2)
# The listener applies a batch of due events itself on a notification, and wakes the workers
# only behind a full batch (listen_webhooks): false leaves every event to the workers.
WEBHOOK_LISTENER_APPLIES = env_bool("WEBHOOK_LISTENER_APPLIES", True)
# A web process sends at most one NOTIFY per this many milliseconds (conversations/whatsapp/
# store.py; the listener looks again behind each one); 0: one per stored event.
WEBHOOK_NOTIFY_GAP_MS = env_int("WEBHOOK_NOTIFY_GAP_MS", 10)
WEBHOOK_CRASH_LIMIT = env_int("WEBHOOK_CRASH_LIMIT", 3)
# /health/ answers 503 when the oldest due event has waited longer than this, or when neither
# beat's sweep nor the listener has run for this long (production mode only; 0 turns a check off).
HEALTH_WEBHOOK_BACKLOG_SECONDS = env_float("HEALTH_WEBHOOK_BACKLOG_SECONDS", 120.0)
HEALTH_WEBHOOK_DISPATCH_SECONDS = env_float("HEALTH_WEBHOOK_DISPATCH_SECONDS", 30.0)
# request.body raises RequestDataTooBig past this; webhooks up to 3 MB must fit.
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES + 64 * 1024

# --- API ----------------------------------------------------------------------------------
# The API (console/api/): the console's operations and access rules, for scripts and
# integrations. Session (the browser, CSRF-checked) or token (``Authorization: Token <key>``,
# made in the admin or by the user at POST /api/auth/token/). Throttled per user: every
# request, and sends more strictly (each one is a WhatsApp message a customer receives).
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["console.api.throttles.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_RATE", "600/min"),
        "sends": env_str("API_SEND_THROTTLE_RATE", "60/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Atende API",
    "DESCRIPTION": "Conversations, messages, customers, canned responses, labels and templates, with the "
    "console's access rules.",
    "VERSION": "1.0.0",
    # The schema and the docs are for logged-in staff, like the API itself.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files from drf-spectacular-sidecar (our static files), never a CDN: the
    # Content-Security-Policy allows scripts from 'self' only.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "conversations.models.Conversation.Status",
        "MessageStatusEnum": "conversations.models.Message.Status",
    },
}

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # Security events (bad webhook signatures) go to their own logger so they can be routed.
        "atende.security": {"level": "INFO"},
    },
}
