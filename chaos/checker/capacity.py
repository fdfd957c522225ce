"""The capacity checks: no resource over capacity and no seat sold twice, in the samples,
at the end, or proven by the acknowledgements alone; counters equal to the recount."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from chaos.observations import BOOK_OPS, Operation, Snapshot, epoch, violation


def check_capacity(
    ops: Sequence[Operation], snapshot: Snapshot, samples: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """held + confirmed <= capacity and counters == recount at every sampled instant and at
    the end; no seat in two active reservations; and no oversell the acknowledgements
    alone prove."""
    found: dict[tuple[str, Any], dict[str, Any]] = {}

    def report(kind: str, subject: Any, detail: str, at: float | None) -> None:
        if (kind, subject) in found:
            found[(kind, subject)]["count"] += 1
        else:
            found[(kind, subject)] = violation(kind, detail, time=at, count=1)

    states = [(sample["time"], sample) for sample in samples]
    final = {
        "resources": {
            rid: [
                r["capacity"],
                r["held"],
                r["confirmed"],
                r["recount_held"],
                r["recount_confirmed"],
            ]
            for rid, r in snapshot.resources.items()
        },
        "double_seats": snapshot.double_seats,
    }
    states.append((None, final))
    for at, state in states:
        when = "at the end" if at is None else f"at {at:.3f}"
        for rid, (capacity, held, confirmed, recount_held, recount_confirmed) in state[
            "resources"
        ].items():
            rid = int(rid)
            if held + confirmed > capacity or recount_held + recount_confirmed > capacity:
                report(
                    "oversell",
                    rid,
                    f"resource {rid} {when}: held {held} + confirmed {confirmed} "
                    f"(recount {recount_held} + {recount_confirmed}) > capacity {capacity}",
                    at,
                )
            if (held, confirmed) != (recount_held, recount_confirmed):
                report(
                    "counter_drift",
                    rid,
                    f"resource {rid} {when}: counters held {held} confirmed {confirmed}, "
                    f"recount {recount_held} / {recount_confirmed}",
                    at,
                )
        for resource, seat, holders in state["double_seats"]:
            report(
                "oversell",
                ("seat", seat),
                f"seat {seat} of resource {resource} {when}: in {holders} active reservations",
                at,
            )
    code, output = snapshot.reconcile
    if code != 0:
        report("counter_drift", "reconcile", f"manage.py reconcile exited {code}: {output}", None)
    for kind, subject, detail, at in _oversell_by_acknowledgements(ops, snapshot):
        report(kind, subject, detail, at)
    return list(found.values())


def _oversell_by_acknowledgements(
    ops: Sequence[Operation], snapshot: Snapshot
) -> list[tuple[str, Any, str, float]]:
    """A reservation is surely active from its acknowledgement until a cancel of it was
    first sent (or, a hold never acknowledged as confirmed, until its expiry). If the
    surely active ones of a resource ever add up past its capacity, or hold one seat
    twice, the acknowledgements alone prove an oversell."""
    cancel_sent: dict[str, float] = {}
    confirmed: set[str] = set()
    for op in ops:
        if op.op == "cancel" and op.attempts:
            reservation = op.reservation or ""
            first = op.attempts[0].start
            cancel_sent[reservation] = min(first, cancel_sent.get(reservation, math.inf))
        if op.op == "confirm" and op.acknowledged:
            confirmed.add(op.reservation or "")
    by_resource: dict[int, list[tuple[float, float, int, list[int], str]]] = defaultdict(list)
    for op in ops:
        if op.op not in BOOK_OPS or not op.acknowledged or op.final is None:
            continue
        told = op.final.response
        if not isinstance(told, dict) or op.final.end is None:
            continue
        public_id = str(told.get("id"))
        until = cancel_sent.get(public_id, math.inf)
        expires = epoch(told.get("hold_expires_at"))
        if told.get("status") == "held" and public_id not in confirmed and expires is not None:
            until = min(until, expires)
        if until > op.final.end:
            by_resource[int(told["resource"])].append(
                (
                    op.final.end,
                    until,
                    int(told["quantity"]),
                    list(told.get("seats") or []),
                    public_id,
                )
            )
    found: list[tuple[str, Any, str, float]] = []
    for resource, spans in by_resource.items():
        capacity = snapshot.resources.get(resource, {}).get("capacity")
        if capacity is not None:
            edges = sorted(
                [(start, 1, quantity) for start, _end, quantity, _s, _id in spans]
                + [(end, 0, -quantity) for _start, end, quantity, _s, _id in spans]
            )
            total = 0
            for at, _order, change in edges:
                total += change
                if total > capacity:
                    found.append(
                        (
                            "oversell",
                            resource,
                            f"resource {resource} at {at:.3f}: acknowledged active places "
                            f"add up to {total} > capacity {capacity}",
                            at,
                        )
                    )
                    break
        by_seat: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
        for start, end, _quantity, seats, public_id in spans:
            for seat in seats:
                by_seat[seat].append((start, end, public_id))
        for seat, seat_spans in by_seat.items():
            seat_spans.sort()
            for (_s1, end1, id1), (start2, _e2, id2) in itertools.pairwise(seat_spans):
                if start2 < end1:
                    found.append(
                        (
                            "oversell",
                            ("seat", seat),
                            f"seat {seat} of resource {resource} at {start2:.3f}: acknowledged "
                            f"to reservations {id1} and {id2} at once",
                            start2,
                        )
                    )
                    break
    return found
