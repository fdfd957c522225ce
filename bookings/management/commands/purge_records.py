"""Purge delivered outbox rows past their retention."""

from typing import Any

from django.core.management.base import BaseCommand

from bookings.worker import outbox_purge_delivered


class Command(BaseCommand):
    help = (
        "Delete delivered notifications (and their delivery log) older than "
        "RESERVO_OUTBOX_RETENTION_DAYS; the worker does this every hour."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{outbox_purge_delivered()} delivered outbox message(s) purged")
