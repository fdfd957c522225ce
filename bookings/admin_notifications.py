"""Notifications in the back office: the outbox (with "retry now"), webhook endpoints and
the delivery log. Registered from `BookingsConfig.ready()`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import CharField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast, Now
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from bookings.models import DeliveryAttempt, OutboxMessage, WebhookEndpoint
from bookings.notifications import EVENT_TYPES, new_webhook_secret


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
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    )
    exclude = ("claim_token",)
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
        """Make dead or waiting rows due at once, with a fresh set of attempts."""
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


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "api_client", "events", "active", "disabled_reason", "created_at")
    list_filter = ("active", "api_client")
    search_fields = ("url", "api_client__name")
    readonly_fields = ("signing_secret", "created_at", "recent_deliveries")
    actions = ("enable", "rotate_secret")

    @admin.display(description=_("events"))
    def events(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types) or str(_("all"))

    @admin.display(description=_("signing secret"))
    def signing_secret(self, endpoint: WebhookEndpoint) -> str:
        return endpoint.secret or str(_("(generated when saved)"))

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
        if not obj.secret:
            obj.secret = new_webhook_secret()
        if obj.active:
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Enable again"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = queryset.update(active=True, disabled_reason="")
        self.message_user(
            request, ngettext("%d endpoint enabled.", "%d endpoints enabled.", count) % count
        )

    @admin.action(description=_("Rotate the signing secret"), permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            endpoint.secret = new_webhook_secret()
            endpoint.save(update_fields=["secret"])
        self.message_user(request, _("New secrets are shown on each endpoint's page."))


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
