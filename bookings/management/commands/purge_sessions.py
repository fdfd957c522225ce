"""Delete expired sessions (the worker does it every hour)."""

from typing import Any

from django.core.management.base import BaseCommand

from bookings.sessions import sessions_purge_expired


class Command(BaseCommand):
    help = (
        "Delete the sessions past their expiry, with the manage tokens they hold; the worker "
        "does this every RESERVO_WORKER_PURGE_EVERY_SECONDS."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{sessions_purge_expired()} expired session(s) deleted")
