"""How many round trips a booking holds the resource row lock for, counted from its statements.

Django logs every statement a connection sends, and its COMMIT, while queries are
captured (`CaptureQueriesContext`). The lock is taken by the statement that selects the
resource row `FOR UPDATE` and released by the COMMIT; from the locking statement's answer
to the COMMIT's arrival, each statement sent in between is one more round trip, and the
answer of the locking statement with the COMMIT's way out make one:

    round trips under the lock = statements between the lock and the COMMIT + 1

Every benchmark run counts one booking of each kind (the naive view, the booking
service, the API with every feature) on its own server's settings and database, and
writes the counts and the statements under the lock to bench/results/latest.json.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

RESOURCE_LOCK = re.compile(
    r'\bFROM\s+"?resources_resource"?.*\bFOR\s+(NO\s+KEY\s+)?UPDATE\b', re.IGNORECASE | re.DOTALL
)
COMMIT = re.compile(r"^\s*COMMIT\b", re.IGNORECASE)
STATEMENT_SHOWN_CHARS = 160


def lock_round_trips(statements: Sequence[str]) -> dict[str, Any]:
    """The round trips the first resource row lock in `statements` is held for (None when
    no statement takes it, or no COMMIT follows), the statements sent under it, and how
    many statements there were in all."""
    unknown: dict[str, Any] = {
        "lock_round_trips": None,
        "under_lock": [],
        "statements": len(statements),
    }
    lock = next((i for i, sql in enumerate(statements) if RESOURCE_LOCK.search(sql)), None)
    if lock is None:
        return unknown
    commit = next(
        (i for i in range(lock + 1, len(statements)) if COMMIT.match(statements[i])), None
    )
    if commit is None:
        return unknown
    between = statements[lock + 1 : commit]
    return {
        "lock_round_trips": len(between) + 1,
        "under_lock": [_shown(sql) for sql in (statements[lock], *between, statements[commit])],
        # Every statement of the request, BEGIN and COMMIT included.
        "statements": len(statements),
    }


def _shown(sql: str) -> str:
    text = " ".join(sql.split())
    if len(text) <= STATEMENT_SHOWN_CHARS:
        return text
    return text[: STATEMENT_SHOWN_CHARS - 3] + "..."


def captured(act: Callable[[], Any]) -> list[str]:
    """The SQL the default connection sent while `act()` ran, in order, COMMITs included."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        act()
    return [query["sql"] for query in queries.captured_queries]


def count_bookings(resource_id: int, api_key: str = "") -> dict[str, dict[str, Any]]:
    """One booking on `resource_id` by each path (the API only with `api_key`), counted."""
    from django.test import Client

    client = Client()

    def post(path: str, headers: dict[str, str]) -> Callable[[], Any]:
        def act() -> None:
            response = client.post(
                path,
                {"resource": resource_id, "quantity": 1},
                content_type="application/json",
                headers=headers,
            )
            if response.status_code != 201:
                raise RuntimeError(f"POST {path} answered {response.status_code}")

        return act

    paths = {
        "naive_book": post("/bench/reference/naive/", {}),
        "bare_book": post("/bench/reference/bare/", {}),
    }
    if api_key:
        paths["hot_book"] = post(
            "/api/v1/reservations/",
            {"Authorization": f"Api-Key {api_key}", "Idempotency-Key": uuid.uuid4().hex},
        )
    counts: dict[str, dict[str, Any]] = {}
    for name, act in paths.items():
        try:
            counts[name] = lock_round_trips(captured(act))
        except Exception as exc:
            counts[name] = {"lock_round_trips": None, "error": f"{type(exc).__name__}: {exc}"}
    return counts
