"""Bench-only reference bookings: where Reservo's API stands between two plain Django views.

- `naive`: the view the goals are set against: lock the resource row with the ORM, check
  its counters, create the reservation. No API key, idempotency, history or outbox row.
- `ceiling`: the most a booking that does Reservo's database work can reach through
  Django: one round trip, the service's own `reservo_book` call in autocommit, and the
  answer from its row. No DRF, API key, throttle, idempotency, Redis or validation.

Routed only when RESERVO_BENCH_FLOOR=1 (see reservo/urls.py), like the floors: they skip
every check a real booking needs, so production never routes them. Both take the API's
body (`{"resource": id, "quantity": n}`) and answer 201, or 4xx with a problem code
(the ceiling answers 409 with `reservo_book`'s outcome for every refusal).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bookings.models import Reservation
from bookings.services.booking import BOOK_SQL, book_params
from bookings.services.common import Actor, _new_reference, manage_token_hash
from resources.models import Resource

ACTOR = Actor("api", "bench-reference")


def _problem(code: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code}, status=status)


def _booking_view(book: Callable[[int, int], JsonResponse]) -> Callable[..., JsonResponse]:
    """A POST view that reads the API's booking body and calls `book(resource, quantity)`."""

    @csrf_exempt
    @require_POST
    @wraps(book)
    def view(request: HttpRequest) -> JsonResponse:
        try:
            body = json.loads(request.body)
            resource_id, quantity = int(body["resource"]), int(body["quantity"])
        except (ValueError, TypeError, KeyError):
            return _problem("validation_error", 400)
        if quantity < 1:
            return _problem("validation_error", 400)
        return book(resource_id, quantity)

    return view


@_booking_view
def naive_book(resource_id: int, quantity: int) -> JsonResponse:
    reference = _new_reference()
    token_hash = manage_token_hash(secrets.token_urlsafe(24))
    with transaction.atomic():
        resource = Resource.objects.select_for_update().filter(pk=resource_id).first()
        if resource is None:
            return _problem("not_found", 404)
        if resource.available < quantity:
            return _problem("sold_out", 409)
        reservation = Reservation.objects.create(
            resource=resource,
            quantity=quantity,
            status=Reservation.Status.CONFIRMED,
            confirmed_at=timezone.now(),
            reference=reference,
            manage_token_hash=token_hash,
        )
    return JsonResponse({"reference": reservation.reference}, status=201)


@_booking_view
def ceiling_book(resource_id: int, quantity: int) -> JsonResponse:
    params = book_params(resource_id=resource_id, actor=ACTOR, quantity=quantity)
    # Autocommit: the function's statement is its own transaction, one round trip.
    with connection.cursor() as cursor:
        cursor.execute(BOOK_SQL, params)
        columns = [column.name for column in cursor.description]
        outcome: dict[str, Any] = dict(zip(columns, cursor.fetchone(), strict=True))
    if outcome["outcome"] != "booked":
        return _problem(outcome["outcome"], 409)
    return JsonResponse({"reference": outcome["reference"]}, status=201)


urlpatterns = [
    path("naive/", naive_book, name="bench-reference-naive"),
    path("ceiling/", ceiling_book, name="bench-reference-ceiling"),
]
