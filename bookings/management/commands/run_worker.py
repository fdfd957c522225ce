"""Run the background worker: outbox delivery (emails, webhooks) and periodic jobs."""

import signal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bookings.worker import WATCHDOG_EXIT_STATUS, Watchdog, Worker


class Command(BaseCommand):
    help = (
        "Deliver notifications from the outbox, expire due holds every few seconds and "
        "purge old records. SIGTERM or Ctrl-C finishes the current batch, then exits. "
        f"A loop stuck longer than the watchdog's bound exits with status {WATCHDOG_EXIT_STATUS}, "
        "for the supervisor to restart it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--watchdog-seconds",
            type=float,
            default=None,
            help=(
                "Exit when the loop makes no progress for this long (default: the outbox "
                "lease, RESERVO_OUTBOX_LEASE_SECONDS; every step of the loop is bounded far "
                "below it, and the rows a stuck worker claimed are redelivered after it)."
            ),
        )
        parser.add_argument(
            "--heartbeat-file",
            type=Path,
            default=None,
            help="Touched about once a second while the loop makes progress (a liveness probe).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bound = options["watchdog_seconds"] or settings.RESERVO_OUTBOX_LEASE_SECONDS
        if bound <= settings.RESERVO_WORKER_POLL_SECONDS:
            raise CommandError(
                "--watchdog-seconds must exceed the poll interval "
                f"(RESERVO_WORKER_POLL_SECONDS = {settings.RESERVO_WORKER_POLL_SECONDS})."
            )
        worker = Worker()

        def stop(signum: int, frame: object) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        watchdog = Watchdog(
            worker.heartbeat,
            bound=bound,
            name=worker.name,
            heartbeat_file=options["heartbeat_file"],
        ).start()
        self.stdout.write(f"worker {worker.name} running", ending="\n")
        self.stdout.flush()
        try:
            worker.run()
        finally:
            watchdog.stop()
