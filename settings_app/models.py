"""The SystemSettings singleton: knobs staff turn at run time."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

SINGLETON_ID = 1


class SystemSettings(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    maintenance_mode = models.BooleanField(_("maintenance mode"), default=False)
    maintenance_message = models.TextField(_("maintenance message"), blank=True, default="")
    maintenance_until = models.DateTimeField(_("planned end"), null=True, blank=True)
    # When maintenance went on (database clock): switching it off extends the holds that
    # were live then by as long as it lasted.
    maintenance_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    hold_ttl_seconds = models.PositiveIntegerField(_("hold duration (seconds)"), default=600)
    default_max_per_booking = models.PositiveIntegerField(_("default max per booking"), default=10)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        verbose_name = _("system settings")
        verbose_name_plural = _("system settings")
        constraints = [
            models.CheckConstraint(condition=Q(id=SINGLETON_ID), name="system_settings_singleton"),
            models.CheckConstraint(
                condition=Q(hold_ttl_seconds__gte=10) & Q(hold_ttl_seconds__lte=86400),
                name="system_settings_hold_ttl_range",
            ),
            models.CheckConstraint(
                condition=Q(default_max_per_booking__gte=1),
                name="system_settings_max_per_booking_positive",
            ),
        ]

    def __str__(self) -> str:
        return str(_("System settings"))
