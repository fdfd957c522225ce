"""The system settings page: one row, no add or delete; saves go through the service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from settings_app.models import SINGLETON_ID, SystemSettings
from settings_app.services import (
    HOLD_TTL_MAX_SECONDS,
    HOLD_TTL_MIN_SECONDS,
    UPDATABLE_FIELDS,
    system_settings_update,
)


class SystemSettingsForm(forms.ModelForm):
    hold_ttl_seconds = forms.IntegerField(
        label=_("hold duration (seconds)"),
        min_value=HOLD_TTL_MIN_SECONDS,
        max_value=HOLD_TTL_MAX_SECONDS,
        help_text=_("How long a hold keeps its places before it expires (10 s to one day)."),
    )
    default_max_per_booking = forms.IntegerField(
        label=_("default max per booking"),
        min_value=1,
        help_text=_("Applies to resources without their own limit."),
    )

    class Meta:
        model = SystemSettings
        fields = [
            "maintenance_mode",
            "maintenance_message",
            "maintenance_until",
            "hold_ttl_seconds",
            "default_max_per_booking",
        ]
        help_texts = {
            "maintenance_mode": _(
                "On: every booking write (pages and API) on every instance is refused "
                "within a second. Browsing and this admin keep working."
            ),
            "maintenance_message": _("Shown to customers and API clients while it is on."),
            "maintenance_until": _("Optional; shown to customers and sent as Retry-After."),
        }


@admin.register(SystemSettings)
class SystemSettingsAdmin(admin.ModelAdmin):
    form = SystemSettingsForm
    fieldsets = [
        (
            _("Maintenance"),
            {"fields": ["maintenance_mode", "maintenance_message", "maintenance_until"]},
        ),
        (_("Booking rules"), {"fields": ["hold_ttl_seconds", "default_max_per_booking"]}),
        (_("History"), {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["updated_at"]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """There is only one row: the list is its page."""
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)
        return HttpResponseRedirect(
            reverse("admin:settings_app_systemsettings_change", args=[SINGLETON_ID])
        )

    def save_model(
        self, request: HttpRequest, obj: SystemSettings, form: Any, change: bool
    ) -> None:
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        changes = {field: value for field, value in changes.items() if field in UPDATABLE_FIELDS}
        # The form checks the same rules first, so the service's own checks never refuse here.
        saved = system_settings_update(**changes)
        obj.updated_at = saved.updated_at
