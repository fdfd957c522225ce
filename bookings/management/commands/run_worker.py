"""Run the background worker: outbox delivery (emails, webhooks) and periodic jobs."""

import signal
from typing import Any

from django.core.management.base import BaseCommand

from bookings.worker import Worker


class Command(BaseCommand):
    help = (
        "Deliver notifications from the outbox, expire due holds every few seconds and "
        "purge old records. SIGTERM or Ctrl-C finishes the current batch, then exits."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker()

        def stop(signum: int, frame: object) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"worker {worker.name} running", ending="\n")
        self.stdout.flush()
        worker.run()
