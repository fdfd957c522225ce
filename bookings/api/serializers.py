"""Request and response shapes of the reservation and analytics endpoints."""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from bookings.api.base import BoundedListField, TimestampField, utc_timestamp
from bookings.models import Reservation, ReservationStatus
from bookings.names import customer_name_clean
from bookings.services import check_in_code

MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1


class CustomerNameField(serializers.CharField):
    """A customer's name, without control or bidi-control characters (it starts emails)."""

    def to_internal_value(self, data: Any) -> str:
        return customer_name_clean(super().to_internal_value(data))


class CustomerSerializer(serializers.Serializer):
    name = CustomerNameField(max_length=200, required=False, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")


class ReservationSerializer(serializers.Serializer):
    """A reservation as integrators see it; `id` is its public UUID."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    reference = serializers.CharField(read_only=True)
    resource = serializers.IntegerField(source="resource_id", read_only=True)
    quantity = serializers.IntegerField(read_only=True)
    seats = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ReservationStatus.choices, read_only=True)
    hold_expires_at = TimestampField(read_only=True, allow_null=True)
    created_at = TimestampField(read_only=True)
    confirmed_at = TimestampField(read_only=True, allow_null=True)
    cancelled_at = TimestampField(read_only=True, allow_null=True)
    expired_at = TimestampField(read_only=True, allow_null=True)
    checked_in_at = TimestampField(read_only=True, allow_null=True)
    check_in_code = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()

    def to_representation(self, instance: Reservation) -> dict[str, Any]:
        """The fields above, written out: this runs on every booking answer and list page,
        and skips DRF's per-instance copy of the declared fields (which still describe
        the schema; a test keeps the two in step)."""
        return {
            "id": str(instance.public_id),
            "reference": instance.reference,
            "resource": instance.resource_id,
            "quantity": instance.quantity,
            "seats": self.get_seats(instance),
            "status": instance.status,
            "hold_expires_at": utc_timestamp(instance.hold_expires_at),
            "created_at": utc_timestamp(instance.created_at),
            "confirmed_at": utc_timestamp(instance.confirmed_at),
            "cancelled_at": utc_timestamp(instance.cancelled_at),
            "expired_at": utc_timestamp(instance.expired_at),
            "checked_in_at": utc_timestamp(instance.checked_in_at),
            "check_in_code": self.get_check_in_code(instance),
            "customer": self.get_customer(instance),
        }

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_seats(self, reservation: Reservation) -> list[int]:
        seat_ids = getattr(reservation, "seat_ids", None)
        if seat_ids is None:
            seat_ids = sorted(link.seat_id for link in reservation.seat_links.all())
        return list(seat_ids)

    @extend_schema_field(
        serializers.CharField(
            help_text="Signed and opaque: the QR code shown to the customer, for "
            "POST /api/v1/check-in/."
        )
    )
    def get_check_in_code(self, reservation: Reservation) -> str:
        return check_in_code(reservation.reference)

    @extend_schema_field(CustomerSerializer)
    def get_customer(self, reservation: Reservation) -> dict[str, str]:
        return {"name": reservation.customer_name, "email": reservation.customer_email}


class FieldsBuiltOnce(serializers.Serializer):
    """A request serializer whose fields are built and bound once per class.

    DRF deep-copies the declared fields for every instance, so that one instance may
    change its own; these serializers never do. For the booking request that copy was the
    larger part of its validation's CPU. Validating keeps no state on the fields (only
    their validator lists, built lazily and the same whoever builds them), so instances,
    and threads, may share them. The shared fields are bound to a first instance, which
    only their `root` and `context` would reach: nothing here reads them.
    """

    _shared_fields: ClassVar[BindingDict | None] = None

    @property
    def fields(self) -> BindingDict:  # type: ignore[override]
        cls = type(self)
        if cls.__dict__.get("_shared_fields") is None:
            cls._shared_fields = serializers.Serializer.fields.func(cls())  # type: ignore[attr-defined]
        assert cls._shared_fields is not None
        return cls._shared_fields


class ReservationCreateSerializer(FieldsBuiltOnce):
    resource = serializers.IntegerField(min_value=1, max_value=MAX_BIGINT)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False)
    seats = BoundedListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_BIGINT),
        required=False,
        allow_empty=False,
        max_length=10_000,
    )
    hold = serializers.BooleanField(default=False)
    customer = CustomerSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "seats" in attrs and "quantity" in attrs:
            raise serializers.ValidationError(
                {"seats": [_("Give either seats or a quantity, not both.")]}
            )
        if "seats" not in attrs and "quantity" not in attrs:
            raise serializers.ValidationError(
                {"quantity": [_("Give a quantity or a list of seats.")]}
            )
        return attrs


class ReservationConfirmSerializer(FieldsBuiltOnce):
    customer = CustomerSerializer(required=False)


class AnalyticsQuerySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=["day", "resource"], default="day")
    # "from" is a keyword: the field is declared below under its wire name.
    to = serializers.DateField(required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.DateField(required=False)
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and end < start:
            raise serializers.ValidationError({"to": [_("Must not be before 'from'.")]})
        return attrs


class AnalyticsRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The day (YYYY-MM-DD) or the resource's slug.")
    resource = serializers.IntegerField(
        required=False, help_text="With group_by=resource: the resource's id."
    )
    reservations = serializers.IntegerField(help_text="Reservations created.")
    quantity = serializers.IntegerField(help_text="Places in them.")
    cancelled = serializers.IntegerField(help_text="How many of them are cancelled.")


class AnalyticsSerializer(serializers.Serializer):
    results = AnalyticsRowSerializer(many=True)


class CheckInSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A reservation's check_in_code (its QR code).")
