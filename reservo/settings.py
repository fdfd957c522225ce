"""Reservo settings, read from the environment (every variable is listed in the README)."""

from pathlib import Path

import environ
from psycopg import IsolationLevel

from reservo import embedded

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and env.bool("RESERVO_REQUIRE_SECRET_KEY", default=False):
        raise environ.ImproperlyConfigured("SECRET_KEY must be set in production.")
    # Development and tests only: a key derived from the checkout, stable across restarts.
    SECRET_KEY = "reservo-dev-insecure-" + str(BASE_DIR)
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
    "settings_app",
    "resources",
    "bookings",
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
]

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
RESERVO_SERIALIZATION_RETRIES = env.int("RESERVO_SERIALIZATION_RETRIES", default=5)
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

# Booking rules ----------------------------------------------------------------------

RESERVO_DEFAULT_HOLD_TTL_SECONDS = env.int("RESERVO_DEFAULT_HOLD_TTL_SECONDS", default=600)

# Internationalisation ---------------------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = env.str("RESERVO_TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

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
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reservo API",
    "DESCRIPTION": "Reservations that never sell a place twice.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Logging ----------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("RESERVO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
