"""Resource endpoints of the v1 API: list, detail, create, change, seats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from bookings.api.base import ApiView, TimestampField
from bookings.models import ApiClient, ApiScope
from reservo.errors import NotFound, ValidationFailed
from resources.models import Resource, ResourceKind, ResourceState
from resources.selectors import (
    availability_of,
    cached_read_keys,
    resource_represented,
    resources_with_availability,
    sales_not_closed,
    seat_map,
)
from resources.services import (
    SeatSpec,
    resource_add_seats,
    resource_create,
    resource_update,
    seat_specs_from_labels,
    seat_specs_from_rows,
)

MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1

SEATS_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "rows": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "per_row": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            "required": ["rows", "per_row"],
        },
        {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1},
    ],
    "description": 'Rows and seats per row ({"rows": ["A", "B"], "per_row": 12}) or labels.',
}


@extend_schema_field(SEATS_SCHEMA)
class SeatsField(serializers.Field):
    """`{"rows": [...], "per_row": n}` or `["A1", "A2", ...]`, as seat specs."""

    def to_internal_value(self, data: Any) -> list[SeatSpec]:
        try:
            if isinstance(data, dict):
                rows, per_row = data.get("rows"), data.get("per_row")
                if (
                    not isinstance(rows, list)
                    or not all(isinstance(row, str) and len(row) <= 10 for row in rows)
                    or not isinstance(per_row, int)
                    or isinstance(per_row, bool)
                ):
                    raise serializers.ValidationError(
                        _('Give {"rows": [row names], "per_row": seats per row}.')
                    )
                return seat_specs_from_rows(rows, per_row)
            if isinstance(data, list) and all(isinstance(label, str) for label in data):
                return seat_specs_from_labels(data)
        except ValidationFailed as exc:
            raise serializers.ValidationError(exc.errors.get("seats", [exc.detail])) from exc
        raise serializers.ValidationError(_("Give rows and seats per row, or a list of labels."))

    def to_representation(self, value: Any) -> Any:
        return value


class ResourceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    slug = serializers.SlugField(read_only=True)
    name = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=ResourceKind.choices, read_only=True)
    capacity = serializers.IntegerField(read_only=True)
    held = serializers.IntegerField(read_only=True, help_text="Places in unexpired holds.")
    confirmed = serializers.IntegerField(read_only=True)
    available = serializers.IntegerField(
        read_only=True, help_text="capacity - held - confirmed, counting only unexpired holds."
    )
    state = serializers.ChoiceField(choices=ResourceState.choices, read_only=True)
    starts_at = TimestampField(read_only=True, allow_null=True)
    ends_at = TimestampField(read_only=True, allow_null=True)
    max_per_booking = serializers.IntegerField(read_only=True, allow_null=True)
    sales_open_at = TimestampField(read_only=True, allow_null=True)
    sales_close_at = TimestampField(read_only=True, allow_null=True)
    description = serializers.CharField(read_only=True)
    venue = serializers.CharField(read_only=True)

    def to_representation(self, instance: Resource) -> dict[str, Any]:
        data = super().to_representation(instance)
        data.update(availability_of(instance))
        return data


class ResourceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=ResourceKind.choices, default=ResourceKind.CAPACITY)
    capacity = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False)
    state = serializers.ChoiceField(choices=ResourceState.choices, default=ResourceState.OPEN)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    max_per_booking = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, required=False, allow_null=True
    )
    sales_open_at = serializers.DateTimeField(required=False, allow_null=True)
    sales_close_at = serializers.DateTimeField(required=False, allow_null=True)
    seats = SeatsField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    venue = serializers.CharField(required=False, allow_blank=True, max_length=200)


class ResourceUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    capacity = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False)
    state = serializers.ChoiceField(choices=ResourceState.choices, required=False)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    max_per_booking = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, required=False, allow_null=True
    )
    sales_open_at = serializers.DateTimeField(required=False, allow_null=True)
    sales_close_at = serializers.DateTimeField(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    venue = serializers.CharField(required=False, allow_blank=True, max_length=200)


class SeatAddSerializer(serializers.Serializer):
    seats = SeatsField()


class SeatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]
    row = serializers.CharField()
    number = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=["available", "held", "booked"])


def _representation(resource: Resource) -> dict[str, Any]:
    return dict(ResourceSerializer(resource).data)


def resource_data(
    resource_id: int, found: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """A resource as the API shows it, through the shared cache (exact right after a write),
    or None if there is no such resource. `found`: as for `resource_represented`."""
    return resource_represented(resource_id, _representation, found)


def _hidden_draft(data: Mapping[str, Any] | None, client: ApiClient) -> bool:
    """True if `data` is a draft and `client` may not see drafts (only `manage` keys may)."""
    return (
        data is not None
        and data["state"] == ResourceState.DRAFT
        and not client.has_scope(ApiScope.MANAGE)
    )


def _resource_or_404(resource_id: int) -> Resource:
    resource = resources_with_availability().filter(pk=resource_id).first()
    if resource is None:
        raise NotFound(_("No such resource."))
    return resource


class ResourceListView(ApiView):
    """List resources (filters `state`, `kind`; only those whose sales have not closed,
    unless `include_past=true`; drafts for `manage` keys only) or create one (`manage`)."""

    required_scopes = {"POST": ApiScope.MANAGE}
    throttle_scope = ApiScope.MANAGE
    serializer_class = ResourceSerializer

    def get_queryset(self) -> QuerySet[Resource]:
        resources = resources_with_availability().order_by("starts_at", "id")
        if not self.client.has_scope(ApiScope.MANAGE):
            resources = resources.exclude(state=ResourceState.DRAFT)
        errors: dict[str, list[str]] = {}
        include_past = self.request.query_params.get("include_past", "false")
        if include_past not in ("true", "false"):
            errors["include_past"] = [_("Must be true or false.")]
        elif include_past == "false":
            resources = sales_not_closed(resources)
        for field, values in (("state", ResourceState.values), ("kind", ResourceKind.values)):
            value = self.request.query_params.get(field)
            if value is None:
                continue
            if value not in values:
                errors[field] = [_("Must be one of: %(values)s.") % {"values": ", ".join(values)}]
            else:
                resources = resources.filter(**{field: value})
        if errors:
            raise ValidationFailed(errors)
        return resources

    @extend_schema(
        operation_id="resources_list",
        parameters=[
            OpenApiParameter("state", str, enum=ResourceState.values),
            OpenApiParameter("kind", str, enum=ResourceKind.values),
            OpenApiParameter(
                "include_past", bool, description="Also resources whose sales have closed."
            ),
        ],
        responses=ResourceSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ResourceSerializer(page, many=True).data)

    @extend_schema(
        operation_id="resources_create",
        request=ResourceWriteSerializer,
        responses={201: ResourceSerializer},
    )
    def post(self, request: Request) -> Response:
        payload = ResourceWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        resource = resource_create(seats=data.pop("seats", ()), **data)
        return Response(
            ResourceSerializer(_resource_or_404(resource.pk)).data, status=status.HTTP_201_CREATED
        )


class ResourceDetailView(ApiView):
    """One resource with exact availability, or change it (`manage`)."""

    required_scopes = {"PATCH": ApiScope.MANAGE}
    throttle_scope = ApiScope.MANAGE
    serializer_class = ResourceSerializer
    http_method_names = ["get", "patch", "options"]

    def shared_cache_reads(self) -> list[str]:
        if self.request.method != "GET":
            return []
        return cached_read_keys("resource", self.kwargs["resource_id"])

    @extend_schema(operation_id="resources_retrieve", responses=ResourceSerializer)
    def get(self, request: Request, resource_id: int) -> Response:
        # Through the versioned cache: exact right after a write (read-your-writes).
        data = resource_data(resource_id, self.prefetched)
        if data is None or _hidden_draft(data, self.client):
            raise NotFound(_("No such resource."))
        return Response(data)

    @extend_schema(
        operation_id="resources_partial_update",
        request=ResourceUpdateSerializer,
        responses=ResourceSerializer,
    )
    def patch(self, request: Request, resource_id: int) -> Response:
        payload = ResourceUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        resource_update(resource_id=resource_id, **payload.validated_data)
        return Response(ResourceSerializer(_resource_or_404(resource_id)).data)


class ResourceSeatsView(ApiView):
    """The seat map (available, held or booked), or add seats (`manage`)."""

    required_scopes = {"POST": ApiScope.MANAGE}
    throttle_scope = ApiScope.MANAGE
    serializer_class = SeatSerializer
    pagination_class = None

    @extend_schema(operation_id="resources_seats_list", responses=SeatSerializer(many=True))
    def get(self, request: Request, resource_id: int) -> Response:
        if not self.client.has_scope(ApiScope.MANAGE):
            data = resource_data(resource_id)
            if data is None or _hidden_draft(data, self.client):
                raise NotFound(_("No such resource."))
        seats = seat_map(resource_id)
        if not seats and not Resource.objects.filter(pk=resource_id).exists():
            raise NotFound(_("No such resource."))
        return Response(seats)

    @extend_schema(
        operation_id="resources_seats_add",
        request=SeatAddSerializer,
        responses={201: ResourceSerializer},
        description="Add seats to a seated resource; its capacity grows by as many.",
    )
    def post(self, request: Request, resource_id: int) -> Response:
        payload = SeatAddSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        resource_add_seats(resource_id=resource_id, seats=payload.validated_data["seats"])
        return Response(
            ResourceSerializer(_resource_or_404(resource_id)).data, status=status.HTTP_201_CREATED
        )
