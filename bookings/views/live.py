"""Live availability, polled by the pages; served from the shared cache (1 s at most)."""

from __future__ import annotations

import re
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
from resources.api import resource_data
from resources.models import ResourceState
from resources.selectors import (
    seat_map,
)

# A resource id: ASCII digits that fit a PostgreSQL bigint (str.isdigit also accepts "²",
# which int() refuses).
RESOURCE_ID = re.compile(r"[0-9]{1,18}")

# Live availability (polled by the pages; served from the ≤1 s shared cache) ----------


def _availability_shown(request: HttpRequest, resource_id: int) -> dict[str, Any] | None:
    """The resource with its availability, or None if there is no such resource or it is
    a draft (which only staff see)."""
    data = resource_data(resource_id)
    if data is None or (data["state"] == ResourceState.DRAFT and not request.user.is_staff):
        return None
    return data


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
    availability = _availability_shown(request, resource_id)
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
        if not part.strip():
            continue
        if not RESOURCE_ID.fullmatch(part.strip()):
            return JsonResponse({"detail": _("ids is a comma-separated list of ids.")}, status=400)
        ids.append(int(part))
    results = []
    for resource_id in dict.fromkeys(ids):
        availability = _availability_shown(request, resource_id)
        if availability is not None:
            results.append(_live_payload(resource_id, availability))
    return JsonResponse({"results": results})
