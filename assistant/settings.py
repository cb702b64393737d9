"""All settings, read from the environment (see .env.example for every variable).

With nothing set and DJANGO_DEBUG=1 the product runs embedded: SQLite, a filesystem
Celery broker and a file cache under var/. Production (DJANGO_DEBUG unset) refuses to
start without SECRET_KEY and FIELD_ENCRYPTION_KEY.
"""

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from kombu import Exchange, Queue

from common.logs import FORMAT as LOG_FORMAT

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))


def required_secret(name: str, dev_default: str) -> str:
    """A secret that production must set; debug runs get a fixed, clearly unsafe value."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set (production refuses to start without it)")


def ranged(name: str, default: int, low: int, high: int) -> int:
    """An integer variable that must lie in [low, high]: a value outside is a typo that
    would otherwise surface much later (a worker of 10,000 processes, an unbounded answer).
    Raises ImproperlyConfigured naming the variable."""
    value: int = _read(env.int, name, default)
    _check_range(name, value, low, high)
    return value


def ranged_float(name: str, default: float, low: float, high: float) -> float:
    """`ranged` for a number of seconds that may have a fraction."""
    value: float = _read(env.float, name, default)
    _check_range(name, value, low, high)
    return value


def _read(read: Callable[..., Any], name: str, default: float) -> Any:
    try:
        return read(name, default=default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {env.str(name)!r}") from exc


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ImproperlyConfigured(f"{name}={value} is out of range: use {low} to {high}")


SECRET_KEY = required_secret("SECRET_KEY", "dev-insecure-secret-key-do-not-use-in-production")
# 32 zero bytes, base64: only ever used with DJANGO_DEBUG=1.
FIELD_ENCRYPTION_KEY = required_secret(
    "FIELD_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

# localhost is always allowed: health probes inside the container call it.
ALLOWED_HOSTS = [
    *env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else []),
    "localhost",
    "127.0.0.1",
]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Shown in the admin as the start of each bot's callback URL, e.g. https://bots.example.com
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "tenants.admin_config.TenantAdminConfig",  # django.contrib.admin, with our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "pgtrigger",
    "tenants",
    "channels_im",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "assistant.urls"
WSGI_APPLICATION = "assistant.wsgi.application"

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------
# A web process's threads for callbacks and the admin, and its REST API requests at work
# at once (assistant/asgi.py); each may hold one pooled PostgreSQL connection, and so may
# the process's watch of waiting API clients.
WEB_THREADS = ranged("WEB_THREADS", 8, 1, 256)
API_THREADS = ranged("API_THREADS", 8, 1, 256)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default has a web and a worker process writing to one file.
    # A file, not :memory:, so a worker process in the end-to-end tests sees the test rows;
    # one per test run, so runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "common.postgresql"  # a cheaper health check
    if env.bool("DATABASE_POOL", default=False):
        # The web process (set by assistant/asgi.py) runs each request's code in a thread
        # of its own: a persistent connection per thread would be a new connection per
        # request. Celery's processes keep theirs (a pool must not cross their fork).
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": WEB_THREADS + API_THREADS + 1,
            "timeout": 10,
        }
    else:
        DATABASES["default"].setdefault(
            "CONN_MAX_AGE", ranged("DATABASE_CONN_MAX_AGE", 60, 0, 3600)
        )
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits, access tokens, live stream text) ------------------------------
CACHE_URL = env.str("CACHE_URL", default=f"file://{VAR_DIR / 'cache'}")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "common.cache.RedisCache", "LOCATION": CACHE_URL}}
elif CACHE_URL.startswith("file://"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": CACHE_URL.removeprefix("file://"),
            # Django's default (300 entries, then a third deleted at random) would drop
            # tokens, stream text and dedupe keys of a busy embedded install.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
elif CACHE_URL == "locmem://":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured("CACHE_URL must be redis://…, file:///path or locmem://")

# --- Celery -------------------------------------------------------------------------
# The embedded broker is kombu's filesystem transport: a real separate worker process,
# no server to install.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders below are the whole address. kombu warns "No hostname was supplied" each
    # time it copies a connection whose URL names no host (every publish): name the one it
    # falls back to.
    CELERY_BROKER_URL = "filesystem://localhost/"
    _broker_dir = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # How often an idle worker looks for a task (kombu's default: every second, which
        # each task's hop, and each turn of a question waiting for the model, would wait).
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With the broker down a callback must still answer quickly: give up publishing after
# about a second; the row stays queued and the sweep enqueues it once the broker is back.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Celery's Django fixup closes the database connection around every task unless told to
# reuse it; reconnecting costs more than most of our tasks' own queries.
CELERY_DB_REUSE_MAX = ranged("CELERY_DB_REUSE_MAX", 1000, 0, 100_000)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Processes, not threads: the time limits below (which bound a claim) need them.
CELERY_WORKER_POOL = "prefork"
CELERY_WORKER_CONCURRENCY = ranged("WORKER_CONCURRENCY", 4, 1, 64)
# The longest a person waits for an answer, from their message: past it the answer so far
# (marked as cut) or an apology. Retries fit in it; WeCom's robot polls for 6 minutes.
IM_ANSWER_BUDGET_SECONDS = ranged("IM_ANSWER_BUDGET_SECONDS", 300, 10, 3600)
# Past the budget, with room for the send: a generation making progress is never killed
# (and started again from zero) by our own limit.
# Where the platform shows no answer growing (a WeCom app, DingTalk without an AI card),
# one short "writing" message once an answer has taken this long; 0: never.
IM_SIGN_OF_LIFE_SECONDS = ranged_float("IM_SIGN_OF_LIFE_SECONDS", 8.0, 0, 120)
CELERY_TASK_SOFT_TIME_LIMIT = ranged(
    "CELERY_TASK_SOFT_TIME_LIMIT", IM_ANSWER_BUDGET_SECONDS + 60, 1, 7200
)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_TASK_DEFAULT_QUEUE = "inference"
# Declared, so that a worker started without -Q consumes all of them (Celery's default is
# only the default queue); -Q still makes a worker dedicated to some. `granted`: questions
# given a model slot after waiting their turn (conversations/tasks.py, wake_granted).
# Workers take from their queues in turn, so a granted question waits for a task or two,
# not behind every new question's first task in `inference`, where later questions would
# reach the model before it.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("inference", "granted", "delivery")
]
CELERY_TASK_ROUTES = {
    "conversations.tasks.generate_reply": {"queue": "inference"},
    "conversations.tasks.deliver_reply": {"queue": "delivery"},
    "conversations.tasks.sweep_stuck_messages": {"queue": "delivery"},
    "conversations.tasks.learn_bot_identities": {"queue": "delivery"},
    "conversations.tasks.refresh_dashboard": {"queue": "delivery"},
    "conversations.tasks.purge_expired": {"queue": "delivery"},
}
# Retention (conversations/retention.py): the hour of the nightly purge (0-23, TIME_ZONE's),
# and how many messages each of its short transactions deletes or redacts.
RETENTION_HOUR = ranged("RETENTION_HOUR", 3, 0, 23)
RETENTION_BATCH_SIZE = ranged("RETENTION_BATCH_SIZE", 1000, 1, 100_000)
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-messages": {
        "task": "conversations.tasks.sweep_stuck_messages",
        "schedule": timedelta(seconds=ranged("IM_SWEEP_INTERVAL_SECONDS", 60, 5, 3600)),
    },
    # A new Feishu bot knows its own open_id within a minute (channels_im/identity.py).
    "learn-bot-identities": {
        "task": "conversations.tasks.learn_bot_identities",
        "schedule": timedelta(seconds=60),
    },
    # The admin dashboard's figures (conversations/rollup.py) lag the log by at most this.
    "refresh-dashboard": {
        "task": "conversations.tasks.refresh_dashboard",
        "schedule": timedelta(seconds=60),
        # A run still waiting when the next is due is dropped, not piled up.
        "options": {"expires": 55},
    },
    # Retention (conversations/retention.py): once a night, at a quiet hour.
    "purge-expired-messages": {
        "task": "conversations.tasks.purge_expired",
        "schedule": crontab(minute=30, hour=RETENTION_HOUR),
        "options": {"expires": 12 * 3600},
    },
}

# --- Our own settings: model endpoint and platforms -------------------------------------
OLLAMA_URL = env.str("OLLAMA_URL", default="http://localhost:11434").rstrip("/")
OLLAMA_CONNECT_TIMEOUT = ranged_float("OLLAMA_CONNECT_TIMEOUT", 5.0, 0.1, 60)
# Longest silence allowed between two streamed chunks (and before the first one).
OLLAMA_TIMEOUT = ranged_float("OLLAMA_TIMEOUT", 120.0, 1, 3600)
OLLAMA_MAX_RETRIES = ranged("OLLAMA_MAX_RETRIES", 3, 0, 10)
OLLAMA_RETRY_BACKOFF = ranged_float("OLLAMA_RETRY_BACKOFF", 2.0, 0, 60)
OLLAMA_NUM_PREDICT = ranged("OLLAMA_NUM_PREDICT", 1024, 1, 32_768)

# --- Model admission (conversations/admission.py) -----------------------------------------
# How long an answer keeps its endpoint's slot without a token before the slot counts as
# free again (its worker was killed): more than the longest a live answer goes without one.
IM_ADMISSION_LEASE_SECONDS = ranged_float(
    "IM_ADMISSION_LEASE_SECONDS",
    OLLAMA_CONNECT_TIMEOUT + OLLAMA_TIMEOUT + 15,
    OLLAMA_CONNECT_TIMEOUT + OLLAMA_TIMEOUT,
    7200,
)
# A question still waiting for a slot this long after it arrived tells its asker where it
# stands (0: never); a live message (WeCom robot stream, Feishu or DingTalk card) says it
# again every IM_QUEUE_UPDATE_SECONDS.
IM_QUEUE_NOTICE_SECONDS = ranged_float("IM_QUEUE_NOTICE_SECONDS", 5.0, 0, 300)
IM_QUEUE_UPDATE_SECONDS = ranged_float("IM_QUEUE_UPDATE_SECONDS", 10.0, 1, 300)

WECOM_API_BASE = env.str("WECOM_API_BASE", default="https://qyapi.weixin.qq.com").rstrip("/")
DINGTALK_API_BASE = env.str("DINGTALK_API_BASE", default="https://api.dingtalk.com").rstrip("/")
DINGTALK_OAPI_BASE = env.str("DINGTALK_OAPI_BASE", default="https://oapi.dingtalk.com").rstrip("/")
FEISHU_API_BASE = env.str("FEISHU_API_BASE", default="https://open.feishu.cn").rstrip("/")
# API bases a Feishu bot may name in its `api_base` credential besides FEISHU_API_BASE
# (Lark, a private cloud): the worker sends the app secret there, so the operator decides.
FEISHU_ALLOWED_API_BASES = [
    base.rstrip("/")
    for base in env.list("FEISHU_ALLOWED_API_BASES", default=["https://open.larksuite.com"])
]
if not urlsplit(OLLAMA_URL).hostname:
    raise ImproperlyConfigured(f"OLLAMA_URL must be an http(s) URL, not {OLLAMA_URL!r}")
# Hosts besides OLLAMA_URL's that a tenant's model endpoint may name ("*": any). Tenant
# admins set endpoints, and the worker calls them from inside your network.
MODEL_ENDPOINT_ALLOWED_HOSTS = env.list("MODEL_ENDPOINT_ALLOWED_HOSTS", default=[])

IM_HTTP_TIMEOUT = ranged_float("IM_HTTP_TIMEOUT", 10.0, 0.5, 120)
# How long a web process may keep using a bot's settings after another process changed them.
IM_BOT_CACHE_SECONDS = ranged_float("IM_BOT_CACHE_SECONDS", 5.0, 0, 300)
IM_DELIVERY_MAX_RETRIES = ranged("IM_DELIVERY_MAX_RETRIES", 5, 0, 20)
IM_DELIVERY_RETRY_BACKOFF = ranged_float("IM_DELIVERY_RETRY_BACKOFF", 2.0, 0, 60)
# A message still queued (or with an expired claim) after this long is enqueued again.
IM_STUCK_AFTER_SECONDS = ranged("IM_STUCK_AFTER_SECONDS", 120, 0, 86_400)
# How a stored question's task reaches the broker (conversations/dispatch.py): "notify",
# the database wakes the worker elected to publish it (PostgreSQL; elsewhere the request
# publishes it), or "publish", the request publishes it.
IM_DISPATCH = env.str("IM_DISPATCH", default="notify")
if IM_DISPATCH not in ("notify", "publish"):
    raise ImproperlyConfigured(f'IM_DISPATCH must be "notify" or "publish", not {IM_DISPATCH!r}')
# The statements every message runs are prepared on their fifth run on a connection
# (common/postgresql). Off by default where IM_DISPATCH is "publish", the setting of a
# proxy that pools connections by transaction, which may keep no prepared statements.
if DATABASES["default"]["ENGINE"] == "common.postgresql" and env.bool(
    "DATABASE_PREPARED_STATEMENTS", default=IM_DISPATCH != "publish"
):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
# How often each worker writes its heartbeat (conversations/heartbeat.py) for /readyz.
IM_WORKER_HEARTBEAT_SECONDS = ranged_float("IM_WORKER_HEARTBEAT_SECONDS", 10.0, 0.1, 300)
# A file each worker also touches at every beat, for an orchestrator's liveness check
# (deploy/worker.yaml); empty: none.
IM_WORKER_HEARTBEAT_FILE = env.str("IM_WORKER_HEARTBEAT_FILE", default="")
IM_CLAIM_SECONDS = ranged("IM_CLAIM_SECONDS", CELERY_TASK_TIME_LIMIT + 30, 1, 86_400)
IM_MAX_BODY_BYTES = ranged("IM_MAX_BODY_BYTES", 256 * 1024, 16 * 1024, 16 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = IM_MAX_BODY_BYTES

# --- Metrics (/metrics: common/metrics/) --------------------------------------------------
# The bearer token Prometheus must send; empty: /metrics is open to anyone who reaches it.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where every process (web, worker) writes its metrics for /metrics to add up. Read from the
# environment by prometheus-client, here and in the worker's children: hence set there.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics"))

# --- Auth, i18n, static -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Admin sign-in throttling (django-axes): failed sign-ins are counted per username and,
# separately, per client address; at the limit either is refused for the cool-off time,
# right password or not. A successful sign-in clears its count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = ranged("ADMIN_LOGIN_FAILURE_LIMIT", 5, 1, 100)
ADMIN_LOGIN_COOLOFF_MINUTES = ranged_float("ADMIN_LOGIN_COOLOFF_MINUTES", 15, 0.5, 7 * 24 * 60)
AXES_COOLOFF_TIME = timedelta(minutes=ADMIN_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = _("Too many failed sign-ins from this account or address. Try again later.")
# The client's address: REMOTE_ADDR, unless a reverse proxy in front sets a header with it
# (e.g. X-Real-IP). Never name a header clients can set themselves.
_client_ip_header = env.str("CLIENT_IP_HEADER", default="")
AXES_IPWARE_META_PRECEDENCE_ORDER = [
    *(["HTTP_" + _client_ip_header.upper().replace("-", "_")] if _client_ip_header else []),
    "REMOTE_ADDR",
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
# Beat's crontab hours (the nightly purge) are TIME_ZONE's too.
CELERY_TIMEZONE = TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# The REST API (spec/api.md): a tenant's key or a signed-in admin user, scopes per view,
# a rate per key, one error body.
REST_FRAMEWORK: dict[str, object] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api_auth.ApiKeyAuthentication",
        "tenants.api_auth.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.api_auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api_auth.KeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
API_RATE_LIMIT_PER_MINUTE = ranged("API_RATE_LIMIT_PER_MINUTE", 600, 1, 100_000)
SPECTACULAR_SETTINGS = {
    "TITLE": "IM Assistant API",
    "DESCRIPTION": "Chat with a tenant's model and read its conversation logs. "
    "向企业自有模型发消息，读取会话记录。",
    "VERSION": "1",
    # The docs page works without internet: its assets come from this server.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.api.document_errors",
    ],
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# One format for web, worker and beat (the worker and beat apply it too: assistant/celery.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"()": "common.logs.UTCFormatter", "format": LOG_FORMAT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
