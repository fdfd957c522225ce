"""Reservo settings, read from the environment (every variable is listed in the README)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from psycopg import IsolationLevel
from whitenoise.compress import Compressor

from reservo import (
    checks,  # noqa: F401  (registers the deploy checks)
    embedded,
    logs,
)

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# A local run may do without what production must be given (SECRET_KEY, RESERVO_PUBLIC_URL,
# an email server): DEBUG, the embedded database (the demo, `make serve` and the benchmark
# on this machine, the suite) or the suite's own processes (pytest sets PYTEST_VERSION, and
# the servers it starts inherit it). Anything else is production (docs/security.md).
RESERVO_LOCAL_RUN = (
    DEBUG
    or embedded.is_embedded_database_url(env.str("DATABASE_URL", default=""))
    or "PYTEST_VERSION" in os.environ
)
SECRET_KEY = env.str("SECRET_KEY", default="")
# Checked by `manage.py check --deploy` (reservo.E001).
RESERVO_GENERATED_SECRET_KEY = not SECRET_KEY
if not SECRET_KEY:
    if not RESERVO_LOCAL_RUN:
        raise environ.ImproperlyConfigured(
            "SECRET_KEY must be set in production: a long random string, kept secret and the "
            "same on every instance (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    # Local runs only: a random key made once and kept in ./.reservo/.
    SECRET_KEY = embedded.local_secret_key()
# Former keys, still accepted (comma-separated) while what they signed lives: key rotation.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("RESERVO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "reservo.admin_apps.ReservoAdminConfig",  # django.contrib.admin with Reservo's site
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
    "reservo",  # its management commands (set_role_timeouts)
    "settings_app",
    "resources",
    "bookings",
]

MIDDLEWARE = [
    "reservo.problems.RequestIdMiddleware",
    "reservo.metrics.MetricsMiddleware",
    "reservo.problems.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "reservo.security.ContentSecurityPolicyMiddleware",
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
# locks out a username from a client address after too many; failures of one username
# from any address also delay its next attempts (settings_app.auth, counted in Redis).
AUTHENTICATION_BACKENDS = [
    "settings_app.auth.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("RESERVO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("RESERVO_LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Its start-up banner would be printed by every process (each gunicorn worker, the worker,
# every manage.py command); the lockout settings are in the README instead.
AXES_VERBOSE = False
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "settings_app.auth.LoginFailureHandler"
AXES_CLIENT_IP_CALLABLE = "reservo.addresses.client_address"
AXES_LOCKOUT_CALLABLE = "settings_app.auth.lockout_response"
# Past this many failures of one username (any address) within the cool-off, its attempts
# wait 1 s, 2 s, 4 s, ... up to the maximum after the one before. Above the per-address
# limit, so that only failures from several addresses reach it.
RESERVO_LOGIN_DELAY_AFTER = env.int("RESERVO_LOGIN_DELAY_AFTER", default=10)
RESERVO_LOGIN_DELAY_MAX_S = env.int("RESERVO_LOGIN_DELAY_MAX_S", default=60)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("RESERVO_PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Client addresses (reservo.addresses), for every per-address limit, the login lockout and
# /metrics. With RESERVO_BEHIND_PROXY (see Security), the client is the entry of
# X-Forwarded-For this many places from the right: each trusted proxy appends the address
# it received the request from.
RESERVO_TRUSTED_PROXIES = env.int("RESERVO_TRUSTED_PROXIES", default=1)

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

# Timeouts bound every wait (milliseconds; README, "Timeouts and PgBouncer"). Booking
# transactions set the lock and statement bounds with SET LOCAL (bookings.locking), so
# they hold behind PgBouncer in transaction mode too. Every other transaction gets the
# statement and idle-in-transaction bounds from its session: startup options on a direct
# connection; behind PgBouncer, which passes no startup options, the role's own defaults
# in the database (`manage.py set_role_timeouts`) and PgBouncer's timeouts
# (deploy/pgbouncer.ini).
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
    # A server that vanished without closing the socket (a partition, a dead host, a
    # blackhole) is noticed within seconds instead of the kernel's hours, and the call
    # fails: a 503 `unavailable`, well within the request timeout. Keepalive probes cover
    # a connection waiting for an answer; tcp_user_timeout (ms) covers a statement the
    # server never acknowledged, which keepalives do not probe and the kernel would
    # otherwise retransmit for some fifteen minutes.
    "keepalives": 1,
    "keepalives_idle": 4,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": env.int(
        "RESERVO_DB_TCP_USER_TIMEOUT_MS", default=RESERVO_STATEMENT_TIMEOUT_MS + 1000
    ),
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
# or the other RESERVO_EMAIL_* variables. Local runs print emails on the console; production
# must name its mail server (dummymail:// sends none), and may not print them: emails carry
# the customers' manage links, which would end up in the logs.
CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
if not RESERVO_LOCAL_RUN and not (
    env.str("RESERVO_EMAIL_URL", default="") or env.str("RESERVO_EMAIL_BACKEND", default="")
):
    raise environ.ImproperlyConfigured(
        "RESERVO_EMAIL_URL must be set in production, e.g. smtp+tls://user:password@host:587 "
        "(dummymail:// to send no email)."
    )
_email = env.email_url("RESERVO_EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = env.str("RESERVO_EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
if not RESERVO_LOCAL_RUN and EMAIL_BACKEND == CONSOLE_EMAIL_BACKEND:
    raise environ.ImproperlyConfigured(
        "The console email backend is for the demo only: it would print the customers' "
        "private manage links in the logs. Set RESERVO_EMAIL_URL to your mail server."
    )
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
# Absolute base of the links in emails (the customer's manage page): the address customers
# use. Required in production, and https there; a local run links to where it serves.
_serving_host = env.str("HOST", default="127.0.0.1")
_serving_host = "127.0.0.1" if _serving_host in ("", "0.0.0.0", "::") else _serving_host  # noqa: S104
if ":" in _serving_host:
    _serving_host = f"[{_serving_host}]"
RESERVO_PUBLIC_URL = env.str(
    "RESERVO_PUBLIC_URL",
    default=f"http://{_serving_host}:{env.str('PORT', default='8000')}"
    if RESERVO_LOCAL_RUN
    else "",
).rstrip("/")
_public_url = urlsplit(RESERVO_PUBLIC_URL)
if (
    _public_url.scheme not in (("http", "https") if RESERVO_LOCAL_RUN else ("https",))
    or not _public_url.hostname
    or _public_url.query
    or _public_url.fragment
):
    raise environ.ImproperlyConfigured(
        "RESERVO_PUBLIC_URL must be set in production, to the https address customers use "
        f"(e.g. https://tickets.example.com); it is {RESERVO_PUBLIC_URL!r}. Links in emails "
        "start with it."
    )

# Webhooks (docs/security.md, "Webhooks"). The timeout bounds a whole delivery: name
# lookup, connect, TLS, request and the response's status line and headers.
RESERVO_WEBHOOK_TIMEOUT_S = env.float("RESERVO_WEBHOOK_TIMEOUT_S", default=5.0)
# Deliveries in flight at once in one worker; an endpoint never has more than one.
RESERVO_WEBHOOK_CONCURRENCY = env.int("RESERVO_WEBHOOK_CONCURRENCY", default=4)
# After this many failed deliveries in a row, an endpoint's circuit opens: its messages wait
# without a connection for the cool-off, then one delivery probes it.
RESERVO_WEBHOOK_CIRCUIT_FAILURES = env.int("RESERVO_WEBHOOK_CIRCUIT_FAILURES", default=5)
RESERVO_WEBHOOK_CIRCUIT_COOLOFF_S = env.float("RESERVO_WEBHOOK_CIRCUIT_COOLOFF_S", default=60.0)
# Loopback and private (RFC 1918, unique-local, shared) addresses may receive webhooks: for
# self-hosted receivers. Link-local, multicast and reserved addresses never may.
RESERVO_WEBHOOK_ALLOW_PRIVATE = env.bool("RESERVO_WEBHOOK_ALLOW_PRIVATE", default=False)
RESERVO_WEBHOOK_MAX_PER_CLIENT = env.int("RESERVO_WEBHOOK_MAX_PER_CLIENT", default=10)
# Encrypts the signing secrets at rest; empty: a key derived from SECRET_KEY.
RESERVO_WEBHOOK_SECRET_KEY = env.str("RESERVO_WEBHOOK_SECRET_KEY", default="")

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
# The languages of the pages, the emails and the API's problems (catalogues in locale/,
# compiled by `make install`). English is the default and the fallback.
LANGUAGES = [("en", "English"), ("fr", "French"), ("de", "German")]
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

RESERVO_BEHIND_PROXY = env.bool("RESERVO_BEHIND_PROXY", default=False)
if RESERVO_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Behind the TLS proxy, cookies are sent over HTTPS only and browsers are told to use HTTPS
# for a year (HSTS, sent on HTTPS responses only), unless the environment says otherwise.
_https = RESERVO_BEHIND_PROXY or SECURE_SSL_REDIRECT
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_https)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_https)
# Secure cookies take the __Host- prefix: browsers then refuse them from another host (a
# sibling subdomain) and over plain HTTP, so nobody can plant one in a customer's browser.
if SESSION_COOKIE_SECURE:
    SESSION_COOKIE_NAME = "__Host-sessionid"
if CSRF_COOKIE_SECURE:
    CSRF_COOKIE_NAME = "__Host-csrftoken"
# No script reads the CSRF cookie (forms carry the token), and the booking pages bind their
# form tokens to it.
CSRF_COOKIE_HTTPONLY = True
# The language switcher's choice: sent like the session cookie, read by no script.
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if RESERVO_BEHIND_PROXY else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every response (reservo.security): the pages load their own
# script, style sheet and images and fetch their own JSON, nothing inline and nothing from
# elsewhere, and no site may frame them. The API docs page (drf-spectacular's Swagger UI)
# has an inline script and styles and data: images: it alone gets them.
RESERVO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
RESERVO_CSP_BY_PATH = {
    "/api/docs/": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}
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
# Rates are "<count>/<period>", the period a unit (s, min, h, day) with an optional
# number ("10/10min"); an empty rate is no limit. All are counted in the shared Redis
# (reservo.limits) and not applied while it does not answer.
# Per API client: reads, booking writes, resource writes; per client address: requests
# without a valid key (none, or a wrong one).
RESERVO_THROTTLE_RATES = {
    "read": env.str("RESERVO_THROTTLE_READ", default="600/min"),
    "book": env.str("RESERVO_THROTTLE_BOOK", default="120/min"),
    "manage": env.str("RESERVO_THROTTLE_MANAGE", default="120/min"),
    "anonymous": env.str("RESERVO_THROTTLE_ANONYMOUS", default="30/min"),
}
# Per client address on the booking pages: holds made, places held at once (live holds),
# and confirmation emails; per recipient: confirmation emails.
RESERVO_HOLD_RATE = env.str("RESERVO_HOLD_RATE", default="10/10min")
RESERVO_HOLD_PLACES_PER_ADDRESS = env.int("RESERVO_HOLD_PLACES_PER_ADDRESS", default=6)
RESERVO_EMAIL_RATE_PER_ADDRESS = env.str("RESERVO_EMAIL_RATE_PER_ADDRESS", default="20/h")
RESERVO_EMAIL_RATE_PER_RECIPIENT = env.str("RESERVO_EMAIL_RATE_PER_RECIPIENT", default="5/h")
# /metrics: loopback clients only; when set, whoever sends "Authorization: Bearer <token>".
RESERVO_METRICS_TOKEN = env.str("RESERVO_METRICS_TOKEN", default="")
SPECTACULAR_SETTINGS = {
    "TITLE": "Reservo API",
    "DESCRIPTION": (
        "Reservations that never sell a place twice.\n\n"
        "Send an `Idempotency-Key` header with every POST. A request whose answer is lost "
        "(a timeout, a reset connection, a 503 when the database went away around the "
        "commit) may have taken effect: a retry with the same key is the only safe retry "
        "(it replays the first answer, or runs if the first did not take effect); without "
        "a key, a retry can book twice."
    ),
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

# One format, gunicorn's own lines included (reservo/logs.py, reservo/gunicorn_conf.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": logs.FORMATTER},
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
