"""Notifications in the back office: the outbox (with "retry now"), webhook endpoints and
the delivery log. Registered from `BookingsConfig.ready()`."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import CharField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast, Now
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from bookings.models import DeliveryAttempt, OutboxMessage, WebhookEndpoint
from bookings.notifications import EVENT_TYPES
from bookings.webhook_secrets import webhook_secret_new
from bookings.webhooks import (
    webhook_endpoint_enable,
    webhook_endpoints_room_ensure,
    webhook_secret_rotate,
    webhook_url_problem,
)
from reservo.errors import LimitExceeded


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryAttemptInline(_ReadOnly, admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = (
        "attempted_at",
        "attempt",
        "succeeded",
        "response_status",
        "duration_ms",
        "error",
        "worker",
    )
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = _("delivery log")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event_type",
        "channel",
        "recipient",
        "reservation",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("status", "channel", "event_type")
    search_fields = ("=event_id", "target", "reservation__reference")
    list_select_related = ("reservation",)
    date_hierarchy = "created_at"
    ordering = ("-id",)
    readonly_fields = (
        "event_id",
        "reservation",
        "event_type",
        "channel",
        "target",
        "payload_shown",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    )
    # The payload is shown without the customer's manage token (payload_shown).
    exclude = ("claim_token", "payload")
    inlines = (DeliveryAttemptInline,)
    actions = ("retry_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing only; the "retry now" action is the one change staff make.
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxMessage]:
        # A webhook row's target is its endpoint's id: show the endpoint's URL instead.
        endpoint_url = (
            WebhookEndpoint.objects.annotate(id_text=Cast("id", CharField()))
            .filter(id_text=OuterRef("target"))
            .values("url")[:1]
        )
        return super().get_queryset(request).annotate(endpoint_url=Subquery(endpoint_url))

    @admin.display(description=_("payload"))
    def payload_shown(self, message: OutboxMessage) -> str:
        payload = {
            key: "(hidden)" if key == "manage_token" else value
            for key, value in (message.payload or {}).items()
        }
        return format_html(
            "<pre>{}</pre>", json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
        )

    @admin.display(description=_("recipient"), ordering="target")
    def recipient(self, message: OutboxMessage) -> str:
        if message.channel == OutboxMessage.Channel.WEBHOOK:
            url = getattr(message, "endpoint_url", None)
            return url or str(_("(deleted endpoint %s)") % message.target)
        return message.target

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bookings.change_outboxmessage")

    @admin.action(description=_("Retry now"), permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        """Make dead or waiting rows due at once, with a fresh set of attempts; an open
        circuit of their endpoints lets the first of them through at once, as its probe."""
        targets = queryset.filter(channel=OutboxMessage.Channel.WEBHOOK).values_list(
            "target", flat=True
        )
        WebhookEndpoint.objects.filter(
            pk__in=[int(target) for target in targets], circuit_open_until__isnull=False
        ).update(circuit_open_until=None)
        count = queryset.exclude(status=OutboxMessage.Status.DELIVERED).update(
            status=OutboxMessage.Status.PENDING,
            next_attempt_at=Now(),
            attempts=0,
            claim_token=None,
        )
        self.message_user(
            request,
            ngettext(
                "%d notification will be delivered within seconds.",
                "%d notifications will be delivered within seconds.",
                count,
            )
            % count,
            messages.SUCCESS,
        )


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("event types"),
        choices=[(e, e) for e in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None checked: every event."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("api_client", "url", "event_types", "active", "disabled_reason")

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        problem = webhook_url_problem(url)
        if problem is not None:
            raise forms.ValidationError(problem)
        return url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        client = cleaned.get("api_client")
        moved = client is not None and client.pk != self.instance.api_client_id
        if client is not None and (self.instance.pk is None or moved):
            try:
                # Inside the admin's transaction: the client stays locked until it commits.
                webhook_endpoints_room_ensure(api_client_id=client.pk, excluding=self.instance.pk)
            except LimitExceeded as exc:
                self.add_error("api_client", exc.detail)
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """The signing secret is shown once, on the page that follows a creation or a rotation,
    as the API does; it is stored encrypted and never displayed again."""

    form = WebhookEndpointForm
    list_display = (
        "url",
        "api_client",
        "events",
        "active",
        "circuit",
        "disabled_reason",
        "created_at",
    )
    list_filter = ("active", "api_client")
    search_fields = ("url", "api_client__name")
    readonly_fields = ("signing_secret", "circuit", "created_at", "recent_deliveries")
    actions = ("enable", "rotate_secret")

    @admin.display(description=_("events"))
    def events(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types) or str(_("all"))

    @admin.display(description=_("signing secret"))
    def signing_secret(self, endpoint: WebhookEndpoint) -> str:
        if not endpoint.pk:
            return str(_("Generated when saved, and shown once."))
        return str(
            _(
                "Shown only when the endpoint was created or its secret rotated. Lost? "
                "Rotate it (action “Rotate the signing secret” on the list)."
            )
        )

    @admin.display(description=_("circuit"))
    def circuit(self, endpoint: WebhookEndpoint) -> str:
        failures = endpoint.consecutive_failures
        if failures < settings.RESERVO_WEBHOOK_CIRCUIT_FAILURES:
            if not failures:
                return str(_("closed"))
            return ngettext(
                "closed (%(count)d failure in a row)",
                "closed (%(count)d failures in a row)",
                failures,
            ) % {"count": failures}
        until = endpoint.circuit_open_until
        return str(_("open: %(count)d failures in a row; next try from %(until)s")) % {
            "count": failures,
            "until": date_format(localtime(until), "DATETIME_FORMAT") if until else "—",
        }

    @admin.display(description=_("recent deliveries"))
    def recent_deliveries(self, endpoint: WebhookEndpoint) -> str:
        if not endpoint.pk:
            return ""
        url = (
            "../../../outboxmessage/?channel__exact=webhook&target="
            f"{endpoint.pk}&o=-1"  # newest first
        )
        return format_html('<a href="{}">{}</a>', url, _("Outbox rows for this endpoint"))

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        if not change:
            obj.secret = webhook_secret_new()
            obj.new_secret = obj.secret  # type: ignore[attr-defined]
        if obj.active:
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The secret, once: rendered into this page, never stored in plain text."""
        secret: str = obj.new_secret  # type: ignore[attr-defined]
        return self._secrets_page(request, _("Webhook endpoint created"), [(obj, secret)])

    def _secrets_page(
        self, request: HttpRequest, title: Any, shown: list[tuple[WebhookEndpoint, str]]
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "shown": shown,
        }
        response = TemplateResponse(
            request, "admin/bookings/webhookendpoint/secret_shown.html", context
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Enable again"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = webhook_endpoint_enable(endpoint_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request, ngettext("%d endpoint enabled.", "%d endpoints enabled.", count) % count
        )

    @admin.action(description=_("Rotate the signing secret"), permissions=["change"])
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> HttpResponse:
        shown = [
            (endpoint, webhook_secret_rotate(endpoint=endpoint))
            for endpoint in queryset.select_related("api_client").order_by("pk")
        ]
        return self._secrets_page(request, _("Signing secrets rotated"), shown)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = (
        "attempted_at",
        "message",
        "attempt",
        "succeeded",
        "response_status",
        "duration_ms",
        "error",
        "worker",
    )
    list_filter = ("succeeded", "message__channel", "message__event_type")
    search_fields = ("=message__event_id", "message__target", "error")
    list_select_related = ("message",)
    readonly_fields = (*list_display,)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
