"""Bench-only reference bookings: the API's booking set against two plain Django views.

- `naive`: a booking as a plain Django view would write it with the ORM: lock the
  resource row, check its counters, create the reservation. No API key, throttle,
  idempotency, validation beyond the body's shape, history or outbox row.
- `bare`: the booking service the API calls (`bookings.services.reservation_book`), from
  a plain Django view: no API key, throttle, Idempotency-Key or DRF. What the service
  itself costs, next to the naive view.

Routed by the benchmark's own URLconf (bench/urls.py), never by the project's. Both take
the API's body (`{"resource": id, "quantity": n}`) and answer 201 with the reference, or
4xx/5xx with the problem's code (`{"code": "sold_out"}`), as the API would.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from functools import wraps

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bookings.models import Reservation
from bookings.services import Actor, reservation_book
from reservo.errors import ReservoError
from resources.models import Resource

CUSTOMER = Actor("customer")


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
    # A reference of its own kind ("NV-" and 12 hex digits: 48 random bits), and the hash
    # of a manage token no one will use: the columns the table requires.
    reference = "NV-" + secrets.token_hex(6).upper()
    token_hash = hashlib.sha256(secrets.token_bytes(24)).hexdigest()
    with transaction.atomic():
        resource = Resource.objects.select_for_update().filter(pk=resource_id).first()
        if resource is None:
            return _problem("not_found", 404)
        if resource.capacity - resource.held - resource.confirmed < quantity:
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
def bare_book(resource_id: int, quantity: int) -> JsonResponse:
    try:
        booking = reservation_book(
            resource_id=resource_id,
            actor=CUSTOMER,
            quantity=quantity,
            hold=False,
            customer_name="",
            customer_email="",
        )
    except ReservoError as error:
        return _problem(error.code, error.http_status)
    return JsonResponse({"reference": booking.reservation.reference}, status=201)


urlpatterns = [
    path("naive/", naive_book, name="bench-reference-naive"),
    path("bare/", bare_book, name="bench-reference-bare"),
]
