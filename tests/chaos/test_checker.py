"""The chaos checker catches what it is for: synthetic histories with a planted violation
(a lost acknowledgement, an oversell, a double transition, a key executed twice, ...)
must each be reported, and a clean history must not be."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.checker import Limits, check
from chaos.observations import Fault, Snapshot

LIMITS = Limits(
    request_bound_s=30,
    margin_s=5,
    recovery_limit_s=30,
    expected_faults=frozenset({"db_blackhole"}),
)
T0 = 1_800_000_000.0
RESOURCE, SMALL = 1, 2
CAPACITIES = {RESOURCE: 100, SMALL: 2}


class Story:
    """A history written the way the workload writes it, and the database that goes with it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.reservations: dict[str, dict[str, Any]] = {}
        self.transitions: dict[str, list[tuple[str, str]]] = {}
        self.samples: list[dict[str, Any]] = []
        self.faults = [Fault("db_blackhole", T0 + 1, T0 + 6)]
        self.next_id = 0

    def attempt(
        self,
        op: str,
        key: str,
        start: float,
        end: float,
        *,
        path: str = "/api/v1/reservations/",
        request: Any = None,
        status: int | None = None,
        response: Any = None,
        code: str | None = None,
        error: str | None = None,
        attempt: int = 1,
    ) -> None:
        self.next_id += 1
        common = {
            "id": self.next_id,
            "op": op,
            "client": 0,
            "key": key,
            "attempt": attempt,
            "instance": "a",
            "path": path,
        }
        self.events.append(
            {"type": "invoke", **common, "method": "POST", "request": request, "time": T0 + start}
        )
        outcome = "unknown" if status is None else "ok" if status < 300 else "fail"
        done: dict[str, Any] = {"type": outcome, **common, "start": T0 + start, "time": T0 + end}
        if status is None:
            done["error"] = error or "timeout"
        else:
            done.update(status=status, response=response)
            if code:
                done["code"] = code
        self.events.append(done)

    def book(
        self,
        key: str,
        public_id: str,
        *,
        at: float = 10,
        resource: int = RESOURCE,
        quantity: int = 1,
        seats: list[int] | None = None,
        status: str = "confirmed",
        stored: bool = True,
    ) -> None:
        request: dict[str, Any] = {"resource": resource, "hold": status == "held"}
        if seats:
            request["seats"] = seats
        else:
            request["quantity"] = quantity
        told = {
            "id": public_id,
            "resource": resource,
            "quantity": len(seats) if seats else quantity,
            "seats": seats or [],
            "status": status,
            "hold_expires_at": None,
        }
        op = "book_seats" if seats else "book"
        self.attempt(op, key, at, at + 0.05, request=request, status=201, response=told)
        if stored:
            self.store(public_id, key, resource, told["quantity"], status, seats or [])

    def store(
        self,
        public_id: str,
        key: str,
        resource: int,
        quantity: int,
        status: str,
        seats: list[int] | None = None,
    ) -> None:
        self.reservations[public_id] = {
            "resource": resource,
            "quantity": quantity,
            "status": status,
            "seats": seats or [],
            "customer_name": key,
            "hold_expires_at": None,
            "expired_at": None,
        }
        self.transitions[public_id] = [("", status)]

    def transition(self, public_id: str, to_status: str) -> None:
        before = self.reservations[public_id]["status"]
        self.reservations[public_id]["status"] = to_status
        self.transitions[public_id].append((before, to_status))

    def cancel(self, key: str, public_id: str, *, at: float, ok: bool) -> None:
        path = f"/api/v1/reservations/{public_id}/cancel/"
        if ok:
            self.attempt(
                "cancel",
                key,
                at,
                at + 0.05,
                path=path,
                status=200,
                response={"id": public_id, "status": "cancelled"},
            )
        else:
            self.attempt(
                "cancel",
                key,
                at,
                at + 0.05,
                path=path,
                status=409,
                code="invalid_state",
                response={"code": "invalid_state", "current_status": "cancelled"},
            )

    def snapshot(self) -> Snapshot:
        totals = {rid: {"held": 0, "confirmed": 0} for rid in CAPACITIES}
        for row in self.reservations.values():
            if row["status"] in totals[row["resource"]]:
                totals[row["resource"]][row["status"]] += row["quantity"]
        return Snapshot(
            resources={
                rid: {
                    "capacity": capacity,
                    "held": totals[rid]["held"],
                    "confirmed": totals[rid]["confirmed"],
                    "recount_held": totals[rid]["held"],
                    "recount_confirmed": totals[rid]["confirmed"],
                }
                for rid, capacity in CAPACITIES.items()
            },
            reservations=self.reservations,
            events=self.transitions,
        )

    def violations(self, snapshot: Snapshot | None = None) -> list[dict[str, Any]]:
        result = check(self.events, snapshot or self.snapshot(), self.samples, self.faults, LIMITS)
        return result.violations

    def kinds(self, snapshot: Snapshot | None = None) -> set[str]:
        return {v["kind"] for v in self.violations(snapshot)}


@pytest.fixture
def story() -> Story:
    """A clean run: bookings, one retried after a timeout, a hold confirmed, a cancel raced
    by three clients (one wins), a refusal, and a booking after the fault healed."""
    story = Story()
    story.book("k1", "r1")
    # The connection broke; sent again with the same key: the first attempt had booked, the
    # retry replays its answer.
    told = {
        "id": "r2",
        "resource": RESOURCE,
        "quantity": 2,
        "seats": [],
        "status": "confirmed",
        "hold_expires_at": None,
    }
    request = {"resource": RESOURCE, "quantity": 2, "hold": False}
    story.attempt("book", "k2", 11, 11.5, request=request, error="disconnected")
    story.attempt("book", "k2", 11.6, 11.7, request=request, status=201, response=told, attempt=2)
    story.store("r2", "k2", RESOURCE, 2, "confirmed")
    story.book("k3", "r3", status="held", at=12)
    story.attempt(
        "confirm",
        "k4",
        13,
        13.1,
        path="/api/v1/reservations/r3/confirm/",
        status=200,
        response={"id": "r3", "status": "confirmed"},
    )
    story.transition("r3", "confirmed")
    story.cancel("k5", "r1", at=20, ok=True)
    story.cancel("k6", "r1", at=20, ok=False)
    story.cancel("k7", "r1", at=20, ok=False)
    story.transition("r1", "cancelled")
    story.book("k8", "r4", resource=SMALL, quantity=2, at=21)
    story.attempt(
        "book",
        "k9",
        22,
        22.1,
        request={"resource": SMALL, "quantity": 1, "hold": False},
        status=409,
        code="sold_out",
        response={"code": "sold_out", "available": 0},
    )
    story.book("k10", "r5", seats=[31, 32], at=23)
    story.samples.append(
        {
            "time": T0 + 22,
            "resources": {str(SMALL): [2, 0, 2, 0, 2], str(RESOURCE): [100, 0, 5, 0, 5]},
            "double_seats": [],
        }
    )
    return story


def test_a_clean_history_has_no_violation(story: Story) -> None:
    result = check(story.events, story.snapshot(), story.samples, story.faults, LIMITS)
    assert result.violations == []
    assert result.figures["operations"] == 10
    assert result.figures["acknowledged"] == 7  # k1 k2 k3 k4 k5 k8 k10
    assert result.figures["unknown"] == 1  # k2's first attempt
    assert result.figures["unresolved"] == 0
    # The first booking sent after the heal (T0 + 6) ended at T0 + 10.05.
    assert result.recovery_s == {"db_blackhole": pytest.approx(4.05)}


def test_a_lost_acknowledgement_is_reported(story: Story) -> None:
    story.book("k11", "r6", at=30, stored=False)
    violations = story.violations()
    assert [v["kind"] for v in violations] == ["lost_acknowledgement"]
    assert "r6" in violations[0]["detail"]


def test_an_acknowledged_cancel_missing_from_the_database_is_reported(story: Story) -> None:
    story.cancel("k11", "r2", at=30, ok=True)  # acknowledged, but r2 stays confirmed
    assert story.kinds() == {"lost_acknowledgement"}


def test_a_booking_stored_otherwise_than_told_is_reported(story: Story) -> None:
    story.reservations["r2"]["quantity"] = 3
    assert "lost_acknowledgement" in story.kinds()


def test_an_oversell_in_a_sample_is_reported(story: Story) -> None:
    story.samples.append(
        {"time": T0 + 25, "resources": {str(SMALL): [2, 1, 2, 1, 2]}, "double_seats": []}
    )
    violations = story.violations()
    assert [v["kind"] for v in violations] == ["oversell"]
    assert "capacity 2" in violations[0]["detail"]


def test_an_oversell_proven_by_acknowledgements_alone_is_reported(story: Story) -> None:
    # One more place of SMALL acknowledged while r4's two are: 3 places of 2. r4 is cancelled
    # later, so the database read at the end, and the samples, look fine.
    story.book("k11", "r6", resource=SMALL, quantity=1, at=30)
    story.cancel("k12", "r4", at=40, ok=True)
    story.transition("r4", "cancelled")
    violations = story.violations()
    assert [v["kind"] for v in violations] == ["oversell"]
    assert "acknowledged active places add up to 3 > capacity 2" in violations[0]["detail"]


def test_a_seat_sold_twice_is_reported(story: Story) -> None:
    story.book("k11", "r6", seats=[32, 33], at=30)
    assert "oversell" in story.kinds()


def test_a_double_transition_is_reported(story: Story) -> None:
    # Two clients were both told their cancel of r2 succeeded.
    story.cancel("k11", "r2", at=30, ok=True)
    story.cancel("k12", "r2", at=30, ok=True)
    story.transition("r2", "cancelled")
    violations = story.violations()
    assert [v["kind"] for v in violations] == ["double_transition"]
    assert "k11" in violations[0]["detail"] and "k12" in violations[0]["detail"]


def test_a_transition_made_twice_in_the_database_is_reported(story: Story) -> None:
    story.transitions["r1"].append(("cancelled", "cancelled"))
    assert "double_transition" in story.kinds()


def test_a_key_executed_twice_is_reported(story: Story) -> None:
    # The retry of k11 booked again instead of replaying the first answer.
    request = {"resource": RESOURCE, "quantity": 1, "hold": False}
    for number, public_id in enumerate(("r6", "r7"), start=1):
        told = {
            "id": public_id,
            "resource": RESOURCE,
            "quantity": 1,
            "seats": [],
            "status": "confirmed",
            "hold_expires_at": None,
        }
        at = 30.0 + number
        story.attempt(
            "book", "k11", at, at + 0.1, request=request, status=201, response=told, attempt=number
        )
        story.store(public_id, "k11", RESOURCE, 1, "confirmed")
    violations = story.violations()
    assert {v["kind"] for v in violations} == {"key_executed_twice"}
    # Seen twice: in the answers (two reservations for one key) and in the database.
    assert len(violations) == 2


def test_a_refused_booking_that_took_effect_is_reported(story: Story) -> None:
    story.store("r6", "k9", RESOURCE, 1, "confirmed")  # k9 was told sold_out
    assert story.kinds() == {"refused_but_effective"}


def test_a_reservation_nobody_asked_for_is_reported(story: Story) -> None:
    story.store("r6", "never-sent", RESOURCE, 1, "confirmed")
    assert story.kinds() == {"phantom_reservation"}


def test_a_transition_nobody_asked_for_is_reported(story: Story) -> None:
    story.transition("r2", "cancelled")
    assert story.kinds() == {"phantom_transition"}


def test_a_server_error_is_reported(story: Story) -> None:
    story.attempt(
        "book",
        "k11",
        30,
        30.1,
        request={"resource": RESOURCE, "quantity": 1},
        status=500,
        code="server_error",
        response={"code": "server_error", "request_id": "abc"},
    )
    assert "server_error" in story.kinds()


def test_a_hang_is_reported(story: Story) -> None:
    story.attempt("book", "k11", 30, 30 + 36, request={"resource": RESOURCE, "quantity": 1})
    story.attempt(
        "book",
        "k11",
        66,
        66.1,
        request={"resource": RESOURCE, "quantity": 1},
        status=409,
        code="sold_out",
        response={"code": "sold_out"},
        attempt=2,
    )
    assert story.kinds() == {"hang"}


def test_an_unknown_never_resolved_is_reported(story: Story) -> None:
    story.attempt("book", "k11", 30, 31, request={"resource": RESOURCE, "quantity": 1})
    story.attempt(
        "book",
        "k11",
        31,
        31.1,
        request={"resource": RESOURCE, "quantity": 1},
        status=503,
        code="unavailable",
        response={"code": "unavailable"},
        attempt=2,
    )
    assert story.kinds() == {"unresolved"}


def test_counters_that_drift_from_the_recount_are_reported(story: Story) -> None:
    snapshot = story.snapshot()
    snapshot.resources[RESOURCE]["confirmed"] += 1
    assert story.kinds(snapshot) == {"counter_drift"}


def test_a_hold_refused_as_expired_before_its_expiry_is_reported(story: Story) -> None:
    story.reservations["r3"]["hold_expires_at"] = T0 + 600
    story.attempt(
        "confirm",
        "k11",
        30,
        30.1,
        path="/api/v1/reservations/r3/confirm/",
        status=409,
        code="hold_expired",
        response={"code": "hold_expired"},
    )
    assert story.kinds() == {"early_expiry"}


def test_no_recovery_after_a_fault_is_reported(story: Story) -> None:
    story.faults = [Fault("db_blackhole", T0 + 40, T0 + 45)]  # no booking after it
    assert story.kinds() == {"no_recovery"}


def test_a_fault_kind_never_injected_is_reported(story: Story) -> None:
    story.faults = [Fault("db_blackhole", T0 + 1, T0 + 1, "not caught", injected=False)]
    assert story.kinds() == {"fault_not_injected"}
