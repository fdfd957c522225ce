"""Bench-only floor views: the cheapest JSON GET and POST this stack can serve, no database.

Routed by the benchmark's own URLconf (bench/urls.py), never by the project's. They go
through the same middleware as every API view, so their throughput is what the framework
and server cost on their own.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def floor_get(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"id": 1, "available": 3000, "state": "open"})


@csrf_exempt
@require_POST
def floor_post(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body)
    except ValueError:
        return JsonResponse({"code": "validation_error"}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"code": "validation_error"}, status=400)
    return JsonResponse(
        {"resource": body.get("resource"), "quantity": body.get("quantity")}, status=201
    )


urlpatterns = [
    path("get/", floor_get, name="bench-floor-get"),
    path("post/", floor_post, name="bench-floor-post"),
]
