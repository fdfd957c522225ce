"""Expire every hold past its expiry (the worker runs this every few seconds)."""

from typing import Any

from django.core.management.base import BaseCommand

from bookings.services import reservations_expire_due


class Command(BaseCommand):
    help = "Expire every hold past its expiry, by the database clock."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        while expired := reservations_expire_due():
            total += expired
        self.stdout.write(f"{total} hold(s) expired")
