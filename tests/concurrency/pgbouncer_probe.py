"""Run in a subprocess whose DATABASE_URL points at PgBouncer (transaction pooling):
races `count` bookings for one resource and prints the outcomes as JSON."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservo.settings")
django.setup()

from bookings.services import reservation_book  # noqa: E402
from tests.conftest import CUSTOMER, run_concurrently  # noqa: E402


def main(resource_id: int, count: int) -> None:
    results = run_concurrently(
        count, lambda i: reservation_book(resource_id=resource_id, quantity=1, actor=CUSTOMER)
    )
    outcomes = Counter(
        getattr(r, "code", type(r).__name__) if isinstance(r, Exception) else "ok" for r in results
    )
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
