"""What a chaos run leaves to check: the attempts and operations of the history, the
faults, and the database as read at the end.

What an answer proves. A 2xx (`ok`) is an acknowledgement: its effect must be in the
database as told. A 4xx (`fail`) other than a retryable one is a refusal: it had no
effect. A 503, a 409 `idempotency_in_progress`, a 429 and no answer at all (`unknown`) may
or may not have taken effect; the client retries them with the same Idempotency-Key until
a definite answer comes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

BOOK_OPS = frozenset({"book", "book_seats"})
TRANSITION_OPS = {"confirm": "confirmed", "cancel": "cancelled"}
RETRYABLE_CODES = frozenset(
    {"busy", "unavailable", "maintenance", "idempotency_in_progress", "rate_limited"}
)


def retryable(outcome: str, status: int | None, code: str | None) -> bool:
    """No answer, or one that says to try again: the effect is not known yet."""
    if outcome == "unknown":
        return True
    return outcome == "fail" and (code in RETRYABLE_CODES or status in (429, 503))


@dataclass
class Attempt:
    """One HTTP request and what came back."""

    id: int
    op: str
    client: int
    key: str
    attempt: int
    instance: str
    path: str
    request: Any
    start: float
    end: float | None = None
    outcome: str = "unknown"  # ok | fail | unknown
    status: int | None = None
    code: str | None = None
    response: Any = None
    error: str | None = None

    @property
    def retryable(self) -> bool:
        return retryable(self.outcome, self.status, self.code)

    @property
    def definite(self) -> bool:
        return not self.retryable

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass
class Operation:
    """Everything done under one Idempotency-Key: the attempts of one operation."""

    key: str
    op: str
    client: int
    path: str
    request: Any
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt | None:
        """The definite answer that ended it; None if it never got one (unresolved)."""
        last = self.attempts[-1] if self.attempts else None
        return last if last is not None and last.definite else None

    @property
    def acknowledged(self) -> bool:
        return self.final is not None and self.final.outcome == "ok"

    @property
    def refused(self) -> bool:
        final = self.final
        return final is not None and final.outcome == "fail" and (final.status or 0) < 500

    @property
    def reservation(self) -> str | None:
        """The reservation a transition names (from its path), or that a booking made."""
        if self.op in TRANSITION_OPS:
            return self.path.rstrip("/").split("/")[-2]
        final = self.final
        if final is not None and final.outcome == "ok" and isinstance(final.response, dict):
            return str(final.response.get("id"))
        return None


@dataclass
class Fault:
    kind: str
    at: float
    healed_at: float
    detail: str = ""
    injected: bool = True


@dataclass
class Snapshot:
    """The database at the end of the run (plain data; chaos/database.py reads it).

    resources: id -> {"capacity", "held", "confirmed", "recount_held", "recount_confirmed"}
    reservations: public id -> {"resource", "quantity", "status", "seats", "customer_name",
                                "hold_expires_at", "expired_at"} (times in epoch seconds)
    events: public id -> [(from_status, to_status), ...] in order
    double_seats: [(resource, seat, active reservations holding it), ...]
    reconcile: (exit code, output) of `manage.py reconcile`
    """

    resources: dict[int, dict[str, int]]
    reservations: dict[str, dict[str, Any]]
    events: dict[str, list[tuple[str, str]]]
    double_seats: list[tuple[int, int, int]] = field(default_factory=list)
    reconcile: tuple[int, str] = (0, "")


def violation(kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "detail": detail, **extra}


def epoch(value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(str(value)).timestamp()


def operations(events: Iterable[dict[str, Any]]) -> tuple[list[Operation], list[dict[str, Any]]]:
    """Attempts grouped by key, in invocation order; and the nemesis events."""
    by_id: dict[int, Attempt] = {}
    by_key: dict[str, Operation] = {}
    nemesis = []
    for event in events:
        kind = event["type"]
        if kind == "nemesis":
            nemesis.append(event)
        elif kind == "invoke":
            attempt = Attempt(
                id=event["id"],
                op=event["op"],
                client=event["client"],
                key=event["key"],
                attempt=event["attempt"],
                instance=event.get("instance", ""),
                path=event["path"],
                request=event.get("request"),
                start=event["time"],
            )
            by_id[attempt.id] = attempt
            operation = by_key.get(attempt.key)
            if operation is None:
                operation = by_key[attempt.key] = Operation(
                    attempt.key, attempt.op, attempt.client, attempt.path, attempt.request
                )
            operation.attempts.append(attempt)
        else:
            attempt = by_id[event["id"]]
            attempt.end = event["time"]
            attempt.outcome = kind
            attempt.status = event.get("status")
            attempt.code = event.get("code")
            attempt.response = event.get("response")
            attempt.error = event.get("error")
    return list(by_key.values()), nemesis
