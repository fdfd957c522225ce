"""Reservations as told against reservations as stored: bookings, their transitions and
their expiry."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from chaos.observations import BOOK_OPS, TRANSITION_OPS, Operation, Snapshot, violation

ALLOWED_TRANSITIONS = frozenset(
    {
        ("", "held"),
        ("", "confirmed"),
        ("held", "confirmed"),
        ("held", "cancelled"),
        ("held", "expired"),
        ("confirmed", "cancelled"),
    }
)
# Same machine, same clock; what is left is the time between reading it and using it.
CLOCK_TOLERANCE_S = 1.0


def check_bookings(ops: Sequence[Operation], snapshot: Snapshot) -> list[dict[str, Any]]:
    """Every acknowledged booking is stored as told; a key made at most one; a refused one
    none; and nothing is stored that nobody asked for."""
    found = []
    by_key: dict[str, list[str]] = defaultdict(list)
    for public_id, row in snapshot.reservations.items():
        by_key[row["customer_name"]].append(public_id)
    invoked = {op.key for op in ops}
    for op in ops:
        if op.op not in BOOK_OPS:
            continue
        made = by_key.get(op.key, [])
        if len(made) > 1:
            found.append(
                violation(
                    "key_executed_twice",
                    f"{op.op} {op.key} made {len(made)} reservations: {', '.join(sorted(made))}",
                    key=op.key,
                )
            )
        if op.refused and made:
            found.append(
                violation(
                    "refused_but_effective",
                    f"{op.op} {op.key} was refused ({op.final.code if op.final else ''}) "
                    f"yet reservation {made[0]} exists",
                    key=op.key,
                )
            )
        if not op.acknowledged:
            continue
        told = op.final.response if op.final is not None else None
        if not isinstance(told, dict):
            continue
        public_id = str(told.get("id"))
        stored = snapshot.reservations.get(public_id)
        if stored is None:
            found.append(
                violation(
                    "lost_acknowledgement",
                    f"{op.op} {op.key} was acknowledged (201, reservation {public_id}) "
                    "and is not in the database",
                    key=op.key,
                    reservation=public_id,
                )
            )
            continue
        request = op.request if isinstance(op.request, dict) else {}
        wanted_seats = sorted(request.get("seats") or [])
        wanted_quantity = request.get("quantity") or len(wanted_seats)
        told_seats = sorted(told.get("seats") or [])
        mismatches = []
        if told.get("quantity") != wanted_quantity or stored["quantity"] != told.get("quantity"):
            mismatches.append(
                f"quantity asked {wanted_quantity}, told {told.get('quantity')}, stored {stored['quantity']}"
            )
        if told_seats != wanted_seats or sorted(stored["seats"]) != told_seats:
            mismatches.append(
                f"seats asked {wanted_seats}, told {told_seats}, stored {sorted(stored['seats'])}"
            )
        if stored["resource"] != told.get("resource") or stored["resource"] != request.get(
            "resource"
        ):
            mismatches.append(f"resource told {told.get('resource')}, stored {stored['resource']}")
        first = snapshot.events.get(public_id, [])[:1]
        if first != [("", told.get("status"))]:
            mismatches.append(f"told {told.get('status')}, first event {first}")
        if mismatches:
            found.append(
                violation(
                    "lost_acknowledgement",
                    f"{op.op} {op.key} (reservation {public_id}) stored otherwise than told: "
                    + "; ".join(mismatches),
                    key=op.key,
                    reservation=public_id,
                )
            )
    for key, made in by_key.items():
        if key not in invoked:
            found.append(
                violation(
                    "phantom_reservation",
                    f"reservations {', '.join(sorted(made))} name key {key!r}, "
                    "which no client sent",
                    key=key,
                )
            )
    return found


def check_transitions(ops: Sequence[Operation], snapshot: Snapshot) -> list[dict[str, Any]]:
    """Every acknowledged confirm and cancel is in the database; none was acknowledged
    twice; the database made none twice, none out of order and none nobody asked for;
    holds expire by the database clock."""
    found = []
    acknowledged: dict[tuple[str, str], list[str]] = defaultdict(list)
    for op in ops:
        target = TRANSITION_OPS.get(op.op)
        if target is None:
            continue
        reservation = op.reservation or ""
        row = snapshot.reservations.get(reservation)
        final = op.final
        if op.acknowledged:
            acknowledged[(reservation, target)].append(op.key)
            events = snapshot.events.get(reservation, [])
            if not any(to == target for _from, to in events) or (
                target == "cancelled" and (row is None or row["status"] != "cancelled")
            ):
                found.append(
                    violation(
                        "lost_acknowledgement",
                        f"{op.op} {op.key} was acknowledged for reservation {reservation}, "
                        f"which the database has {row['status'] if row else 'not at all'} "
                        f"(events {events})",
                        key=op.key,
                        reservation=reservation,
                    )
                )
        if op.op == "confirm" and final is not None and row is not None:
            expires = row.get("hold_expires_at")
            if expires is not None and final.end is not None:
                if final.code == "hold_expired" and final.end < expires - CLOCK_TOLERANCE_S:
                    found.append(
                        violation(
                            "early_expiry",
                            f"confirm {op.key} was told hold_expired {expires - final.end:.1f} s "
                            f"before reservation {reservation}'s hold expired",
                            key=op.key,
                            reservation=reservation,
                        )
                    )
                if final.outcome == "ok" and final.start > expires + CLOCK_TOLERANCE_S:
                    found.append(
                        violation(
                            "late_confirm",
                            f"confirm {op.key} confirmed reservation {reservation} "
                            f"{final.start - expires:.1f} s after its hold expired",
                            key=op.key,
                            reservation=reservation,
                        )
                    )
    for (reservation, target), keys in acknowledged.items():
        if len(keys) > 1:
            found.append(
                violation(
                    "double_transition",
                    f"reservation {reservation} {target} was acknowledged {len(keys)} times "
                    f"(keys {', '.join(sorted(keys))})",
                    reservation=reservation,
                )
            )
    asked = {(op.reservation, TRANSITION_OPS[op.op]) for op in ops if op.op in TRANSITION_OPS}
    for reservation, events in snapshot.events.items():
        unasked = [
            pair
            for pair in events
            if pair[0]
            and pair[1] in TRANSITION_OPS.values()
            and (reservation, pair[1]) not in asked
        ]
        if unasked:
            found.append(
                violation(
                    "phantom_transition",
                    f"reservation {reservation} went {unasked} in the database, which no "
                    "client asked for",
                    reservation=reservation,
                )
            )
        counts = Counter(to for _from, to in events)
        twice = sorted(status for status, n in counts.items() if n > 1)
        if twice:
            found.append(
                violation(
                    "double_transition",
                    f"reservation {reservation} became {', '.join(twice)} more than once "
                    f"in the database (events {events})",
                    reservation=reservation,
                )
            )
        wrong = [pair for pair in events if pair not in ALLOWED_TRANSITIONS]
        chained = all(a[1] == b[0] for a, b in itertools.pairwise(events))
        row = snapshot.reservations.get(reservation)
        ends_right = row is None or not events or events[-1][1] == row["status"]
        if wrong or not chained or not ends_right:
            found.append(
                violation(
                    "invalid_transition",
                    f"reservation {reservation}: events {events}, status "
                    f"{row['status'] if row else '?'}",
                    reservation=reservation,
                )
            )
    for reservation, row in snapshot.reservations.items():
        expired_at, expires = row.get("expired_at"), row.get("hold_expires_at")
        if row["status"] == "expired" and (
            expired_at is None or expires is None or expired_at < expires
        ):
            found.append(
                violation(
                    "early_expiry",
                    f"reservation {reservation} expired at {expired_at}, its hold ran to {expires}",
                    reservation=reservation,
                )
            )
    return found
