"""Liveness and readiness probes."""

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from reservo.errors import Unavailable


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except DatabaseError:
        database = "unavailable"
    try:
        cache.set("readyz", "1", timeout=5)
        cache_status = "ok" if cache.get("readyz") == "1" else "unavailable"
    except Exception:  # a cache fault is reported, never fatal
        cache_status = "unavailable"
    status = 200 if database == "ok" else 503
    response = JsonResponse({"database": database, "cache": cache_status}, status=status)
    if status == 503:
        response["Retry-After"] = str(Unavailable.retry_after)
    return response
