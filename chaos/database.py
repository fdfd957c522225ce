"""Reading the database beside the app, on direct connections (not through the fault
proxy or PgBouncer): the sampler that watches capacity during the run, and the snapshot
the checker compares the history with at its end."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

from chaos.observations import Snapshot

APPLICATION_NAME = "reservo-chaos"
ACTIVE_SQL = "('held', 'confirmed')"
# Counters and a recount of the same resources, in one statement: one snapshot.
RESOURCES_SQL = f"""
    SELECT r.id, r.capacity, r.held, r.confirmed,
           coalesce(sum(v.quantity) FILTER (WHERE v.status = 'held'), 0)::int,
           coalesce(sum(v.quantity) FILTER (WHERE v.status = 'confirmed'), 0)::int
      FROM resources_resource r
      LEFT JOIN bookings_reservation v ON v.resource_id = r.id AND v.status IN {ACTIVE_SQL}
     WHERE r.id = ANY(%s)
     GROUP BY r.id
"""  # noqa: S608 (a constant)
DOUBLE_SEATS_SQL = f"""
    SELECT s.resource_id, s.seat_id, count(*)::int
      FROM bookings_reservationseat s
      JOIN bookings_reservation v ON v.id = s.reservation_id
     WHERE v.status IN {ACTIVE_SQL} AND s.resource_id = ANY(%s)
     GROUP BY s.resource_id, s.seat_id
    HAVING count(*) > 1
"""  # noqa: S608 (a constant)
RESERVATIONS_SQL = """
    SELECT v.public_id::text, v.resource_id, v.quantity, v.status, v.customer_name,
           extract(epoch FROM v.hold_expires_at)::float8,
           extract(epoch FROM v.expired_at)::float8,
           coalesce(array_agg(s.seat_id ORDER BY s.seat_id)
                    FILTER (WHERE s.seat_id IS NOT NULL), '{}')
      FROM bookings_reservation v
      JOIN bookings_apiclient c ON c.id = v.api_client_id
      LEFT JOIN bookings_reservationseat s ON s.reservation_id = v.id
     WHERE c.name LIKE %s
     GROUP BY v.id
"""
EVENTS_SQL = """
    SELECT v.public_id::text, e.from_status, e.to_status
      FROM bookings_reservationevent e
      JOIN bookings_reservation v ON v.id = e.reservation_id
      JOIN bookings_apiclient c ON c.id = v.api_client_id
     WHERE c.name LIKE %s
     ORDER BY e.reservation_id, e.occurred_at, e.id
"""


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        url, autocommit=True, connect_timeout=3, application_name=APPLICATION_NAME
    )


def resource_state(conn: psycopg.Connection[Any], resource_ids: list[int]) -> dict[str, Any]:
    """Counters, recount and seats held twice, read in one repeatable-read snapshot."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        rows = conn.execute(RESOURCES_SQL, [resource_ids]).fetchall()
        double = conn.execute(DOUBLE_SEATS_SQL, [resource_ids]).fetchall()
    finally:
        conn.execute("COMMIT")
    return {
        "resources": {str(row[0]): list(row[1:]) for row in rows},
        "double_seats": [list(row) for row in double],
    }


class Sampler(threading.Thread):
    """Reads every resource's counters and recount twice a second, for the whole run
    (a sample that fails, PostgreSQL being down, is skipped)."""

    def __init__(self, url: str, resource_ids: list[int], path: Path, every_s: float = 0.5):
        super().__init__(name="sampler", daemon=True)
        self.url = url
        self.resource_ids = resource_ids
        self.path = path
        self.every_s = every_s
        self.samples: list[dict[str, Any]] = []
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        with open(self.path, "w") as out:
            while not self.stopping.wait(self.every_s):
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.url)
                    sample = {"time": time.time(), **resource_state(conn, self.resource_ids)}
                except psycopg.Error:
                    self.failed += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                    continue
                self.samples.append(sample)
                out.write(json.dumps(sample) + "\n")
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def snapshot(
    url: str, resource_ids: list[int], client_prefix: str, reconcile: tuple[int, str]
) -> Snapshot:
    """The final state of the run's resources and of its clients' reservations."""
    with connect(url) as conn:
        state = resource_state(conn, resource_ids)
        reservations = {
            public_id: {
                "resource": resource,
                "quantity": quantity,
                "status": status,
                "customer_name": customer_name,
                "hold_expires_at": hold_expires_at,
                "expired_at": expired_at,
                "seats": list(seats),
            }
            for (
                public_id,
                resource,
                quantity,
                status,
                customer_name,
                hold_expires_at,
                expired_at,
                seats,
            ) in conn.execute(RESERVATIONS_SQL, [client_prefix + "%"]).fetchall()
        }
        events: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for public_id, from_status, to_status in conn.execute(
            EVENTS_SQL, [client_prefix + "%"]
        ).fetchall():
            events[public_id].append((from_status, to_status))
    return Snapshot(
        resources={
            int(rid): dict(
                zip(
                    ("capacity", "held", "confirmed", "recount_held", "recount_confirmed"),
                    values,
                    strict=True,
                )
            )
            for rid, values in state["resources"].items()
        },
        reservations=reservations,
        events=dict(events),
        double_seats=[tuple(row) for row in state["double_seats"]],  # type: ignore[misc]
        reconcile=reconcile,
    )
