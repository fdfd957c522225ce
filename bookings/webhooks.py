"""Webhook endpoints: the rules for their URLs and number, and the writes that need them.

Used alike by the API (bookings.api_webhooks) and the admin (bookings.admin_notifications).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import ngettext

from bookings.models import ApiClient, WebhookEndpoint
from bookings.webhook_http import webhook_url_refusal
from bookings.webhook_secrets import webhook_secret_new
from reservo.errors import LimitExceeded


def webhook_url_problem(url: str) -> str | None:
    """Why `url` may not be a webhook endpoint, or None (docs/security.md, "Webhooks")."""
    return webhook_url_refusal(
        url,
        allow_private=settings.RESERVO_WEBHOOK_ALLOW_PRIVATE,
        timeout=settings.RESERVO_WEBHOOK_TIMEOUT_S,
    )


def webhook_endpoints_room_ensure(*, api_client_id: int, excluding: int | None = None) -> None:
    """Refuse one more endpoint for the client past RESERVO_WEBHOOK_MAX_PER_CLIENT.

    Locks the client's row until the caller's transaction ends, so that two concurrent
    creations cannot both take the last place.
    """
    limit = settings.RESERVO_WEBHOOK_MAX_PER_CLIENT
    with transaction.atomic():
        list(ApiClient.objects.select_for_update().filter(pk=api_client_id).values("pk"))
        endpoints = WebhookEndpoint.objects.filter(api_client_id=api_client_id)
        if excluding is not None:
            endpoints = endpoints.exclude(pk=excluding)
        if endpoints.count() >= limit:
            raise LimitExceeded(
                ngettext(
                    "An API client has at most %(limit)d webhook endpoint.",
                    "An API client has at most %(limit)d webhook endpoints.",
                    limit,
                )
                % {"limit": limit},
                limit=limit,
            )


def webhook_endpoint_create(
    *, api_client: ApiClient, url: str, event_types: list[str], active: bool = True
) -> WebhookEndpoint:
    """A new endpoint with a new signing secret (`endpoint.secret`, to be shown once).

    `url` has been checked with `webhook_url_problem`."""
    with transaction.atomic():
        webhook_endpoints_room_ensure(api_client_id=api_client.pk)
        endpoint = WebhookEndpoint(
            api_client=api_client, url=url, event_types=event_types, active=active
        )
        endpoint.secret = webhook_secret_new()
        endpoint.save()
    return endpoint


def webhook_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """A new signing secret for the endpoint, returned to be shown once; the old one stops
    signing at once."""
    secret = webhook_secret_new()
    endpoint.secret = secret
    endpoint.save(update_fields=["secret_encrypted"])
    return secret


def webhook_endpoint_enable(*, endpoint_ids: list[int]) -> int:
    """Enable endpoints again, with a closed circuit; returns how many."""
    return WebhookEndpoint.objects.filter(pk__in=endpoint_ids).update(
        active=True, disabled_reason="", consecutive_failures=0, circuit_open_until=None
    )
