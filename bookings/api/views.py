"""Reservation and analytics endpoints. They call the booking services; they never change
reservation state themselves."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import translation
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from bookings.api.base import ApiView
from bookings.api.serializers import (
    AnalyticsQuerySerializer,
    AnalyticsSerializer,
    CheckInSerializer,
    ReservationConfirmSerializer,
    ReservationCreateSerializer,
    ReservationSerializer,
)
from bookings.models import ApiScope, Reservation, ReservationStatus
from bookings.services import (
    Actor,
    check_in_reservation_id,
    reservation_book,
    reservation_cancel,
    reservation_check_in,
    reservation_confirm,
)
from reservo import metrics
from reservo.errors import NotFound, ReservoError, ResourceNotBookable, ValidationFailed
from resources.models import Resource, ResourceState


class ReservationViewMixin(ApiView):
    def actor(self) -> Actor:
        return Actor("api", self.client.name)

    def visible_reservations(self) -> QuerySet[Reservation]:
        """A `book` client sees its own reservations only; `manage` sees every one. No
        client sees the house's blocks: they are staff's, released in the admin."""
        reservations = Reservation.objects.filter(blocked=False)
        if not self.client.has_scope(ApiScope.MANAGE):
            reservations = reservations.filter(api_client=self.client)
        return reservations

    def reservation_pk(self, public_id: str) -> int:
        try:
            parsed = uuid.UUID(str(public_id))
        except ValueError:
            parsed = None
        pk = (
            self.visible_reservations()
            .filter(public_id=parsed)
            .values_list("pk", flat=True)
            .first()
            if parsed
            else None
        )
        if pk is None:
            # Another client's reservation is "not found" too: no existence leak.
            raise NotFound(_("No such reservation."))
        return pk

    def reservation_response(self, reservation: Reservation, code: int = 200) -> Response:
        return Response(ReservationSerializer(reservation).data, status=code)


class ReservationListView(ReservationViewMixin):
    """List reservations (a `book` key sees its own) or book places by quantity or seats."""

    serializer_class = ReservationSerializer

    @extend_schema(
        operation_id="reservations_list",
        parameters=[
            OpenApiParameter("resource", int, description="Only this resource's reservations."),
            OpenApiParameter("status", str, enum=ReservationStatus.values),
        ],
        responses=ReservationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        reservations = self.visible_reservations()
        errors: dict[str, list[str]] = {}
        resource = request.query_params.get("resource")
        if resource is not None:
            if not resource.isdigit() or int(resource) > 2**63 - 1:
                errors["resource"] = [_("A resource id is a positive integer.")]
            else:
                reservations = reservations.filter(resource_id=int(resource))
        status_filter = request.query_params.get("status")
        if status_filter is not None:
            if status_filter not in ReservationStatus.values:
                errors["status"] = [_("Unknown status.")]
            else:
                reservations = reservations.filter(status=status_filter)
        if errors:
            raise ValidationFailed(errors)
        page = self.paginate_queryset(
            reservations.prefetch_related("seat_links").order_by("-created_at", "-id")
        )
        return self.get_paginated_response(ReservationSerializer(page, many=True).data)

    @extend_schema(
        operation_id="reservations_create",
        request=ReservationCreateSerializer,
        responses={201: ReservationSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self._booking_request(request)
        try:
            with self._booking_refusals(data["resource_id"]):
                booking = reservation_book(
                    **data,
                    actor=self.actor(),
                    api_client=self.client,
                )
        except ReservoError as exc:
            metrics.booking_outcome(exc.code)
            raise
        metrics.booking_outcome("created")
        return self.reservation_response(booking.reservation, status.HTTP_201_CREATED)

    def _booking_request(self, request: Request) -> dict[str, Any]:
        """The booking's arguments from the request body."""
        payload = ReservationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data: dict[str, Any] = payload.validated_data
        customer = data.get("customer") or {}
        return {
            "resource_id": data["resource"],
            "hold": data["hold"],
            "quantity": data.get("quantity"),
            "seat_ids": data.get("seats"),
            "customer_name": customer.get("name", ""),
            "customer_email": customer.get("email", ""),
            # The request's language (Accept-Language): the customer's emails use it.
            "language": translation.get_language(),
        }

    @contextlib.contextmanager
    def _booking_refusals(self, resource_id: int) -> Iterator[None]:
        try:
            yield
        except NotFound as exc:
            raise ValidationFailed({"resource": [_("No such resource.")]}) from exc
        except ResourceNotBookable as exc:
            # A draft is no such resource to all but `manage` keys: neither its name nor
            # that it exists.
            if not self.client.has_scope(ApiScope.MANAGE) and (
                Resource.objects.filter(pk=resource_id, state=ResourceState.DRAFT).exists()
            ):
                raise ValidationFailed({"resource": [_("No such resource.")]}) from exc
            raise


class ReservationDetailView(ReservationViewMixin):
    """One reservation, by its public id."""

    serializer_class = ReservationSerializer

    @extend_schema(operation_id="reservations_retrieve", responses=ReservationSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        reservation = (
            self.visible_reservations()
            .filter(pk=self.reservation_pk(public_id))
            .prefetch_related("seat_links")
            .first()
        )
        if reservation is None:
            raise NotFound(_("No such reservation."))
        return self.reservation_response(reservation)


class ReservationConfirmView(ReservationViewMixin):
    """Turn a hold into a booking; a hold past its expiry is refused (hold_expired)."""

    serializer_class = ReservationSerializer

    @extend_schema(
        operation_id="reservations_confirm",
        request=ReservationConfirmSerializer,
        responses=ReservationSerializer,
    )
    def post(self, request: Request, public_id: str) -> Response:
        pk = self.reservation_pk(public_id)
        payload = ReservationConfirmSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        customer = payload.validated_data.get("customer")
        reservation = reservation_confirm(
            reservation_id=pk,
            actor=self.actor(),
            customer_name=customer.get("name") if customer else None,
            customer_email=customer.get("email") if customer else None,
        )
        return self.reservation_response(reservation)


class ReservationCancelView(ReservationViewMixin):
    """Cancel a held or confirmed reservation; its places are released once."""

    serializer_class = ReservationSerializer

    @extend_schema(
        operation_id="reservations_cancel", request=None, responses=ReservationSerializer
    )
    def post(self, request: Request, public_id: str) -> Response:
        reservation = reservation_cancel(
            reservation_id=self.reservation_pk(public_id),
            actor=self.actor(),
        )
        return self.reservation_response(reservation)


class BookingAnalyticsView(ApiView):
    """Reservations created per day (UTC) or per resource, with places and cancellations."""

    required_scopes = {"GET": ApiScope.MANAGE}
    serializer_class = AnalyticsSerializer
    pagination_class = None

    @extend_schema(
        operation_id="analytics_bookings",
        parameters=[AnalyticsQuerySerializer],
        responses=AnalyticsSerializer,
    )
    def get(self, request: Request) -> Response:
        query = AnalyticsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        # Bookings: the house's blocks are not sold and not counted.
        reservations = Reservation.objects.filter(blocked=False).annotate(
            day=TruncDate("created_at", tzinfo=UTC)
        )
        if params.get("from"):
            reservations = reservations.filter(day__gte=params["from"])
        if params.get("to"):
            reservations = reservations.filter(day__lte=params["to"])
        totals = {
            "reservations": Count("id"),
            "quantity": Sum("quantity"),
            "cancelled": Count("id", filter=Q(status=ReservationStatus.CANCELLED)),
        }
        results: list[dict[str, Any]]
        if params["group_by"] == "resource":
            by_resource = (
                reservations.values("resource_id", "resource__slug")
                .annotate(**totals)
                .order_by("resource_id")
            )
            results = [
                {"key": row["resource__slug"], "resource": row["resource_id"], **_totals(row)}
                for row in by_resource
            ]
        else:
            by_day = reservations.values("day").annotate(**totals).order_by("day")
            results = [{"key": row["day"].isoformat(), **_totals(row)} for row in by_day]
        return Response({"results": results})


def _totals(row: Mapping[str, Any]) -> dict[str, int]:
    return {
        "reservations": row["reservations"],
        "quantity": row["quantity"] or 0,
        "cancelled": row["cancelled"],
    }


class ReservationCheckInView(ReservationViewMixin):
    """Check a confirmed reservation in, once; again: already_checked_in."""

    required_scopes = {"POST": ApiScope.MANAGE}
    throttle_scope = ApiScope.MANAGE
    serializer_class = ReservationSerializer

    @extend_schema(
        operation_id="reservations_check_in", request=None, responses=ReservationSerializer
    )
    def post(self, request: Request, public_id: str) -> Response:
        reservation = reservation_check_in(
            reservation_id=self.reservation_pk(public_id), actor=self.actor()
        )
        return self.reservation_response(reservation)


class CheckInByCodeView(ReservationViewMixin):
    """Check in the reservation a check-in code (its QR code) was made for; a code that is
    malformed or not signed by this installation: invalid_code."""

    required_scopes = {"POST": ApiScope.MANAGE}
    throttle_scope = ApiScope.MANAGE
    serializer_class = ReservationSerializer

    @extend_schema(
        operation_id="check_in", request=CheckInSerializer, responses=ReservationSerializer
    )
    def post(self, request: Request) -> Response:
        payload = CheckInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        reservation = reservation_check_in(
            reservation_id=check_in_reservation_id(payload.validated_data["code"]),
            actor=self.actor(),
        )
        return self.reservation_response(reservation)
