"""Delete idempotency records past their retention (24 hours at least)."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bookings.api.idempotency import RETENTION, idempotency_records_purge


class Command(BaseCommand):
    help = "Delete idempotency records older than --hours (never less than 24)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours", type=int, default=int(RETENTION.total_seconds() // 3600), help="Minimum 24."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = idempotency_records_purge(older_than=timedelta(hours=options["hours"]))
        self.stdout.write(f"{deleted} idempotency record(s) deleted")
