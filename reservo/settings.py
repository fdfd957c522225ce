"""Reservo settings, read from the environment (every variable is listed in the README)."""

from pathlib import Path

import environ
from psycopg import IsolationLevel
from whitenoise.compress import Compressor

from reservo import embedded

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and env.bool("RESERVO_REQUIRE_SECRET_KEY", default=False):
        raise environ.ImproperlyConfigured("SECRET_KEY must be set in production.")
    # Demo and tests only: a random key made once and kept in ./.reservo/.
    SECRET_KEY = embedded.local_secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("RESERVO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "settings_app",
    "resources",
    "bookings",
]

MIDDLEWARE = [
    "reservo.problems.RequestIdMiddleware",
    "reservo.metrics.MetricsMiddleware",
    "reservo.problems.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "reservo.languages.UnprefixedLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF: a booking form posted during maintenance gets the maintenance page.
    "settings_app.middleware.MaintenanceMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

# Staff login: django-axes counts failures in PostgreSQL (shared by every instance) and
# locks out a username from an address after too many.
AUTHENTICATION_BACKENDS = [
    "settings_app.auth.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("RESERVO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("RESERVO_LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"

ROOT_URLCONF = "reservo.urls"
WSGI_APPLICATION = "reservo.wsgi.application"

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

# Database ---------------------------------------------------------------------------
# No DATABASE_URL: the embedded PostgreSQL in ./.reservo/ is started on demand.

DATABASE_URL = env.str("DATABASE_URL", default="")
if not DATABASE_URL:
    embedded.ensure_postgres()
    DATABASE_URL = embedded.postgres_url()

RESERVO_ISOLATION_LEVEL = env.str("RESERVO_ISOLATION_LEVEL", default="read_committed").lower()
ISOLATION_LEVELS = {
    "read_committed": IsolationLevel.READ_COMMITTED,
    "repeatable_read": IsolationLevel.REPEATABLE_READ,
    "serializable": IsolationLevel.SERIALIZABLE,
}
if RESERVO_ISOLATION_LEVEL not in ISOLATION_LEVELS:
    raise environ.ImproperlyConfigured(
        f"RESERVO_ISOLATION_LEVEL must be one of {', '.join(ISOLATION_LEVELS)}."
    )

# Timeouts bound every wait (milliseconds). The booking transaction sets them again with
# SET LOCAL, so they hold behind PgBouncer in transaction mode too.
RESERVO_LOCK_TIMEOUT_MS = env.int("RESERVO_LOCK_TIMEOUT_MS", default=2000)
RESERVO_STATEMENT_TIMEOUT_MS = env.int("RESERVO_STATEMENT_TIMEOUT_MS", default=5000)
RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS = env.int(
    "RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=10000
)
RESERVO_DB_CONNECT_TIMEOUT_S = env.int("RESERVO_DB_CONNECT_TIMEOUT_S", default=3)
RESERVO_SERIALIZATION_RETRIES = env.int("RESERVO_SERIALIZATION_RETRIES", default=10)
# Behind PgBouncer in transaction mode: no startup options, no server-side cursors.
RESERVO_PGBOUNCER = env.bool("RESERVO_PGBOUNCER", default=False)

_database = env.db_url_config(DATABASE_URL)
_database["ENGINE"] = "django.db.backends.postgresql"
_database["CONN_MAX_AGE"] = env.int("RESERVO_CONN_MAX_AGE", default=60)
_database["CONN_HEALTH_CHECKS"] = True
_database["DISABLE_SERVER_SIDE_CURSORS"] = RESERVO_PGBOUNCER
_database["OPTIONS"] = {
    **_database.get("OPTIONS", {}),
    "isolation_level": ISOLATION_LEVELS[RESERVO_ISOLATION_LEVEL],
    "connect_timeout": RESERVO_DB_CONNECT_TIMEOUT_S,
    "application_name": "reservo",
}
if not RESERVO_PGBOUNCER:
    _database["OPTIONS"]["options"] = (
        f"-c statement_timeout={RESERVO_STATEMENT_TIMEOUT_MS} "
        f"-c idle_in_transaction_session_timeout={RESERVO_IDLE_IN_TRANSACTION_TIMEOUT_MS} "
        "-c timezone=UTC"
    )
_database["TEST"] = {"NAME": env.str("RESERVO_TEST_DATABASE", default="test_reservo")}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache (shared by every instance; never authoritative) -------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL:
    embedded.ensure_redis()
    REDIS_URL = embedded.redis_url()

RESERVO_CACHE_TIMEOUT_MS = env.int("RESERVO_CACHE_TIMEOUT_MS", default=200)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("RESERVO_CACHE_PREFIX", default="reservo"),
        "TIMEOUT": 60,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": RESERVO_CACHE_TIMEOUT_MS / 1000,
            "SOCKET_TIMEOUT": RESERVO_CACHE_TIMEOUT_MS / 1000,
            # Redis down must never fail a request: reads fall back to PostgreSQL.
            "IGNORE_EXCEPTIONS": True,
            "LOG_IGNORED_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "reservo.cache"
# Cached availability may lag a commit by at most this long, even if an invalidation
# was lost while Redis was unreachable.
RESERVO_AVAILABILITY_CACHE_SECONDS = 1

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# Notifications: email, webhooks and the worker that delivers the outbox ----------------

# RESERVO_EMAIL_URL (django-environ: smtp+tls://user:password@host:587, consolemail://, ...)
# or the other RESERVO_EMAIL_* variables; the demo prints emails on the console.
_email = env.email_url("RESERVO_EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = env.str("RESERVO_EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
EMAIL_HOST = env.str("RESERVO_EMAIL_HOST", default=_email.get("EMAIL_HOST") or "localhost")
EMAIL_PORT = env.int("RESERVO_EMAIL_PORT", default=_email.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER = env.str("RESERVO_EMAIL_USER", default=_email.get("EMAIL_HOST_USER") or "")
EMAIL_HOST_PASSWORD = env.str(
    "RESERVO_EMAIL_PASSWORD", default=_email.get("EMAIL_HOST_PASSWORD") or ""
)
EMAIL_USE_TLS = env.bool("RESERVO_EMAIL_USE_TLS", default=bool(_email.get("EMAIL_USE_TLS")))
EMAIL_USE_SSL = env.bool("RESERVO_EMAIL_USE_SSL", default=bool(_email.get("EMAIL_USE_SSL")))
EMAIL_TIMEOUT = env.int("RESERVO_EMAIL_TIMEOUT_S", default=10)
EMAIL_FILE_PATH = env.str("RESERVO_EMAIL_FILE_PATH", default=_email.get("EMAIL_FILE_PATH") or "")
DEFAULT_FROM_EMAIL = env.str("RESERVO_EMAIL_FROM", default="Reservo <bookings@reservo.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Absolute base of the links in emails (the customer's manage page).
RESERVO_PUBLIC_URL = env.str("RESERVO_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

RESERVO_WEBHOOK_TIMEOUT_S = env.float("RESERVO_WEBHOOK_TIMEOUT_S", default=5.0)
RESERVO_OUTBOX_BATCH_SIZE = env.int("RESERVO_OUTBOX_BATCH_SIZE", default=10)
# A claimed row that is not marked done within the lease is delivered again (at most once
# more per lease), so the lease must exceed a batch of slow deliveries.
RESERVO_OUTBOX_LEASE_SECONDS = env.float("RESERVO_OUTBOX_LEASE_SECONDS", default=120.0)
RESERVO_OUTBOX_MAX_ATTEMPTS = env.int("RESERVO_OUTBOX_MAX_ATTEMPTS", default=10)
RESERVO_OUTBOX_BACKOFF_BASE_SECONDS = env.float("RESERVO_OUTBOX_BACKOFF_BASE_SECONDS", default=10.0)
RESERVO_OUTBOX_BACKOFF_MAX_SECONDS = env.float("RESERVO_OUTBOX_BACKOFF_MAX_SECONDS", default=3600.0)
RESERVO_OUTBOX_RETENTION_DAYS = env.int("RESERVO_OUTBOX_RETENTION_DAYS", default=7)
RESERVO_WORKER_POLL_SECONDS = env.float("RESERVO_WORKER_POLL_SECONDS", default=1.0)
RESERVO_WORKER_EXPIRE_EVERY_SECONDS = env.float("RESERVO_WORKER_EXPIRE_EVERY_SECONDS", default=5.0)
RESERVO_WORKER_PURGE_EVERY_SECONDS = env.float("RESERVO_WORKER_PURGE_EVERY_SECONDS", default=3600.0)

# Internationalisation ---------------------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = env.str("RESERVO_TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]
# One way to write dates everywhere (reservo/formats): "Wed 9 Dec 2026, 19:00 CET".
FORMAT_MODULE_PATH = ["reservo.formats"]

# Static files -----------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# Source maps, 14 of the 25 MB collected (the API docs' bundles), are only ever fetched by
# a browser's developer tools: not compressing them takes half the time off collectstatic.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")
# Pages name static files through the manifest, by their hashed names only: the plain-named
# copies are never asked for, and compressing them too doubled collectstatic's time.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

# Security (TLS terminates at a proxy in front; flags follow the environment) --------

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("RESERVO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env.list("RESERVO_SILENCED_SYSTEM_CHECKS", default=[])

# REST framework ---------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_SCHEMA_CLASS": "reservo.problems.ReservoAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "reservo.problems.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# Per API client, in the shared cache ("<count>/<s|min|h|day>"): reads, booking writes,
# resource writes.
RESERVO_THROTTLE_RATES = {
    "read": env.str("RESERVO_THROTTLE_READ", default="100000/min"),
    "book": env.str("RESERVO_THROTTLE_BOOK", default="100000/min"),
    "manage": env.str("RESERVO_THROTTLE_MANAGE", default="100000/min"),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reservo API",
    "DESCRIPTION": "Reservations that never sell a place twice.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ReservationStatusEnum": "bookings.models.ReservationStatus",
        "ResourceStateEnum": "resources.models.ResourceState",
        "ResourceKindEnum": "resources.models.ResourceKind",
    },
}

# Logging ----------------------------------------------------------------------------

LOG_LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # reservo.logs
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"()": "reservo.logs.IsoFormatter", "format": LOG_LINE_FORMAT}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "cache_errors": {"class": "reservo.metrics.CacheErrorCounter"},
    },
    "root": {"handlers": ["console"], "level": env.str("RESERVO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        DJANGO_REDIS_LOGGER: {"handlers": ["console", "cache_errors"], "propagate": False},
    },
}
