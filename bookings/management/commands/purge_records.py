"""Purge delivered outbox rows and idempotency records past their retention."""

from typing import Any

from django.core.management.base import BaseCommand

from bookings.worker import idempotency_purge_expired, outbox_purge_delivered


class Command(BaseCommand):
    help = (
        "Delete delivered notifications older than RESERVO_OUTBOX_RETENTION_DAYS and "
        "idempotency records older than RESERVO_IDEMPOTENCY_RETENTION_HOURS "
        "(the worker does this every hour)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        outbox = outbox_purge_delivered()
        records = idempotency_purge_expired()
        self.stdout.write(f"{outbox} outbox message(s), {records} idempotency record(s) purged")
