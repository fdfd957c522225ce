"""Recount every resource from its reservations; exit 1 on any drift."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from resources.selectors import resources_counter_drift


class Command(BaseCommand):
    help = "Compare every resource's counters with a recount of its reservations."

    def handle(self, *args: Any, **options: Any) -> None:
        drift = resources_counter_drift()
        for row in drift:
            self.stdout.write(
                f"{row['resource'].slug}: held {row['held']} (expected {row['expected_held']}), "
                f"confirmed {row['confirmed']} (expected {row['expected_confirmed']})"
            )
        if drift:
            raise CommandError(f"drift on {len(drift)} resource(s)", returncode=1)
        self.stdout.write("no drift")
