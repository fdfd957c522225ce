"""Webhook endpoints in the v1 API (`manage` scope), under /api/v1/webhooks/.

An API client manages its own endpoints only; another client's endpoint is "not found".
The signing secret is returned when an endpoint is created and when it is rotated, never
in lists or reads.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from bookings.api.base import ApiView, TimestampField
from bookings.models import ApiScope, WebhookEndpoint
from bookings.notifications import EVENT_TYPES
from bookings.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_enable,
    webhook_secret_rotate,
    webhook_url_problem,
)
from reservo.errors import NotFound

# A response that shows a signing secret is kept by no cache.
SECRET_SHOWN_HEADERS = {"Cache-Control": "no-store"}


class WebhookEndpointSerializer(serializers.ModelSerializer):
    url = serializers.URLField(max_length=500)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        required=False,
        allow_empty=True,
        help_text=_("Events to receive; empty or omitted: every event."),
    )
    created_at = TimestampField(read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "event_types",
            "active",
            "disabled_reason",
            "created_at",
        )
        read_only_fields = ("id", "disabled_reason", "created_at")

    def validate_url(self, value: str) -> str:
        problem = webhook_url_problem(value)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value

    def validate_event_types(self, value: list[str]) -> list[str]:
        return sorted(set(value))


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text=_("Signs every delivery (README, Webhooks). Shown only now.")
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields: tuple[str, ...] = (*WebhookEndpointSerializer.Meta.fields, "secret")


class _WebhookView(ApiView):
    required_scope = ApiScope.MANAGE
    throttle_scope = ApiScope.MANAGE
    serializer_class = WebhookEndpointSerializer

    def endpoints(self) -> QuerySet[WebhookEndpoint]:
        return WebhookEndpoint.objects.filter(api_client=self.client)

    def endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        endpoint = self.endpoints().filter(pk=endpoint_id).first()
        if endpoint is None:
            raise NotFound(_("No such webhook endpoint."))
        return endpoint


class WebhookListView(_WebhookView):
    @extend_schema(operation_id="webhooks_list", responses=WebhookEndpointSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.endpoints().order_by("id"))
        return self.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookEndpointSerializer,
        responses={201: WebhookEndpointWithSecretSerializer},
        description=(
            "The URL must resolve to public addresses only (400 validation_error). An API "
            "client has at most RESERVO_WEBHOOK_MAX_PER_CLIENT endpoints (10 by default): "
            "past that, 409 limit_exceeded with `limit`."
        ),
    )
    def post(self, request: Request) -> Response:
        payload = WebhookEndpointSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(
            api_client=self.client,
            url=payload.validated_data["url"],
            event_types=payload.validated_data.get("event_types", []),
            active=payload.validated_data.get("active", True),
        )
        return Response(
            WebhookEndpointWithSecretSerializer(endpoint).data,
            status=status.HTTP_201_CREATED,
            headers=SECRET_SHOWN_HEADERS,
        )


class WebhookDetailView(_WebhookView):
    @extend_schema(operation_id="webhooks_retrieve", responses=WebhookEndpointSerializer)
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(WebhookEndpointSerializer(self.endpoint(endpoint_id)).data)

    @extend_schema(
        operation_id="webhooks_partial_update",
        request=WebhookEndpointSerializer,
        responses=WebhookEndpointSerializer,
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = self.endpoint(endpoint_id)
        payload = WebhookEndpointSerializer(endpoint, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        endpoint = payload.save()
        if payload.validated_data.get("active"):
            # Enabled again by its owner: a fresh start, circuit closed.
            webhook_endpoint_enable(endpoint_ids=[endpoint.pk])
            endpoint.refresh_from_db()
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(operation_id="webhooks_destroy", responses={204: None})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        self.endpoint(endpoint_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretView(_WebhookView):
    @extend_schema(
        operation_id="webhooks_rotate_secret",
        request=None,
        responses=WebhookEndpointWithSecretSerializer,
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = self.endpoint(endpoint_id)
        webhook_secret_rotate(endpoint=endpoint)
        return Response(
            WebhookEndpointWithSecretSerializer(endpoint).data, headers=SECRET_SHOWN_HEADERS
        )


urlpatterns = [
    path("", WebhookListView.as_view(), name="webhook-list"),
    path("<id:endpoint_id>/", WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "<id:endpoint_id>/rotate-secret/",
        WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
]
