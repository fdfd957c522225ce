"""Live availability, polled by the pages; served from the shared cache (1 s at most)."""

from __future__ import annotations

from typing import Any

from django.http import (
    HttpRequest,
    JsonResponse,
)
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bookings.views.common import (
    LIVE_MAX_IDS,
)
from reservo.error_pages import renders_domain_errors
from resources.selectors import (
    resource_availability,
    seat_map,
)

# Live availability (polled by the pages; served from the ≤1 s shared cache) ----------


def _live_payload(resource_id: int, availability: dict[str, int]) -> dict[str, Any]:
    return {
        "id": resource_id,
        "available": availability["available"],
        "capacity": availability["capacity"],
    }


@never_cache
@require_GET
@renders_domain_errors
def live_resource(request: HttpRequest, resource_id: int) -> JsonResponse:
    availability = resource_availability(resource_id)
    if availability is None:
        return JsonResponse({"detail": _("Not found.")}, status=404)
    payload = _live_payload(resource_id, availability)
    payload["seats"] = [
        {"id": seat["id"], "label": seat["label"], "status": seat["status"]}
        for seat in seat_map(resource_id)
    ]
    return JsonResponse(payload)


@never_cache
@require_GET
@renders_domain_errors
def live_resources(request: HttpRequest) -> JsonResponse:
    ids = []
    for part in request.GET.get("ids", "").split(",")[:LIVE_MAX_IDS]:
        if part.strip().isdigit():
            ids.append(int(part))
    results = []
    for resource_id in dict.fromkeys(ids):
        availability = resource_availability(resource_id)
        if availability is not None:
            results.append(_live_payload(resource_id, availability))
    return JsonResponse({"results": results})
