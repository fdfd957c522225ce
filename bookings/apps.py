"""Bookings app: reservations, their history, API clients and the services that change them."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self) -> None:
        from bookings import admin_notifications  # noqa: F401  (registers the admin pages)
