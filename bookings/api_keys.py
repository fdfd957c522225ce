"""API clients and their keys: generation, verification, revocation, DRF authentication.

A key is "rsv_<prefix>_<secret>". Only the prefix (for lookup) and a SHA-256 of the whole
key are stored. Keys are long and random, so a fast hash compared in constant time is the
right tool: a password hasher would cost milliseconds on every request for nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from bookings.models import ApiClient, ApiScope
from reservo.errors import (
    SQLSTATE_READ_ONLY_TRANSACTION,
    NotFound,
    ValidationFailed,
    sqlstate_of,
)

logger = logging.getLogger(__name__)

KEY_PREFIX = "rsv"
KEY_HEADER_KEYWORD = "Api-Key"
# last_used_at is for staff's eyes; writing it on every request would cost a row write each.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_generate() -> tuple[str, str]:
    """A new key and its lookup prefix."""
    prefix = secrets.token_hex(6)
    return f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_prefix_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({str(scope).strip() for scope in scopes if str(scope).strip()})
    unknown = [scope for scope in cleaned if scope not in ApiScope.values]
    if unknown or not cleaned:
        raise ValidationFailed(
            {
                "scopes": [
                    _("Scopes must be one or more of: %(scopes)s.")
                    % {"scopes": ", ".join(ApiScope.values)}
                ]
            }
        )
    return cleaned


def api_client_create(*, name: str, scopes: Iterable[str]) -> tuple[ApiClient, str]:
    """Create a client; returns it and its key, which is shown once and never stored."""
    name = name.strip()
    if not name:
        raise ValidationFailed({"name": [_("A name is required.")]})
    scope_list = _clean_scopes(scopes)
    if ApiClient.objects.filter(name=name).exists():
        raise ValidationFailed({"name": [_("An API client with this name exists.")]})
    key, prefix = api_key_generate()
    with transaction.atomic():
        client = ApiClient.objects.create(
            name=name, scopes=scope_list, key_prefix=prefix, key_hash=api_key_hash(key)
        )
    return client, key


def api_client_revoke(*, client_id: int) -> ApiClient:
    """Revoke a client's key from now on (the database clock); revoking twice is a no-op."""
    with transaction.atomic():
        client = ApiClient.objects.select_for_update().filter(pk=client_id).first()
        if client is None:
            raise NotFound(_("No such API client."))
        if client.revoked_at is None:
            ApiClient.objects.filter(pk=client_id).update(revoked_at=Now())
            client.refresh_from_db(fields=["revoked_at"])
    _clients_by_key_hash.clear()
    return client


# Every API request authenticates: each process remembers a key's client (or that the key
# is invalid) for at most a second, the bound DESIGN sets on per-process copies, so a
# revocation reaches every instance within a second (this process: at once).
CLIENT_CACHE_SECONDS = 1.0
CLIENT_CACHE_MAX = 1024
_clients_by_key_hash: dict[str, tuple[float, ApiClient | None]] = {}


def _client_from_database(prefix: str, key_hash: str) -> ApiClient | None:
    client = ApiClient.objects.filter(key_prefix=prefix).first()
    if client is None or client.revoked_at is not None:
        return None
    if not hmac.compare_digest(key_hash, client.key_hash):
        return None
    return client


def api_client_for_key(key: str) -> ApiClient | None:
    """The active client owning this key, or None: one indexed query at most a second."""
    prefix = api_key_prefix_of(key)
    if prefix is None:
        return None
    key_hash = api_key_hash(key)
    now = time.monotonic()
    cached = _clients_by_key_hash.get(key_hash)
    if cached is not None and now - cached[0] < CLIENT_CACHE_SECONDS:
        client = cached[1]
    else:
        client = _client_from_database(prefix, key_hash)
        if len(_clients_by_key_hash) >= CLIENT_CACHE_MAX:
            _clients_by_key_hash.clear()
        _clients_by_key_hash[key_hash] = (now, client)
    if client is not None:
        _touch(client)
    return client


def _touch(client: ApiClient) -> None:
    """Record use at most once a minute per client (the write is conditional, so
    concurrent instances do not pile up writes either)."""
    if (
        client.last_used_at is not None
        and timezone.now() - client.last_used_at < LAST_USED_RESOLUTION
    ):
        return
    try:
        ApiClient.objects.filter(pk=client.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=Now() - LAST_USED_RESOLUTION)
        ).update(last_used_at=Now())
    except DatabaseError as exc:
        # A read-only database (a standby after a failover) still serves reads: the
        # record of use waits for a writable one.
        if sqlstate_of(exc) != SQLSTATE_READ_ONLY_TRANSACTION:
            raise
        logger.info("API client %s: last use not recorded (read-only database)", client.pk)
        return
    client.last_used_at = timezone.now()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Api-Key <key>`; request.user and request.auth are the ApiClient."""

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiClient] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _sep, key = header.partition(" ")
        if keyword.lower() != KEY_HEADER_KEYWORD.lower() or not key.strip():
            raise exceptions.AuthenticationFailed(
                _("Use the header 'Authorization: Api-Key <key>'.")
            )
        client = api_client_for_key(key.strip())
        if client is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        return client, client

    def authenticate_header(self, request: Request) -> str:
        # A value here keeps failed authentication a 401 rather than a 403.
        return KEY_HEADER_KEYWORD


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes `ApiKeyAuthentication`."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "The value is `Api-Key <key>` (create a key with "
            "`manage.py create_api_client`).",
        }


class HasScope(permissions.BasePermission):
    """The view's `required_scope` (per method via `required_scopes`) must be granted."""

    message = _("This API key lacks the scope this request needs.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            raise exceptions.NotAuthenticated()
        scope = required_scope(request, view)
        return client.has_scope(scope)


def required_scope(request: Request, view: Any) -> str:
    scopes: dict[str, str] = getattr(view, "required_scopes", {})
    return scopes.get(request.method or "GET", getattr(view, "required_scope", ApiScope.BOOK))
