"""What each key was answered: no 500, no refusal the operation should not get, no hang,
every unknown resolved, and one answer per key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaos.checker.limits import Limits
from chaos.observations import Attempt, Operation, violation

# The refusals each operation may get while the system keeps its promises.
EXPECTED_REFUSALS = {
    "book": frozenset({"sold_out"}),
    "book_seats": frozenset({"seats_unavailable"}),
    "confirm": frozenset({"invalid_state", "hold_expired"}),
    "cancel": frozenset({"invalid_state"}),
}


def check_answers(ops: Sequence[Operation], limits: Limits) -> list[dict[str, Any]]:
    """No 500, no unexpected refusal, no hang, every unknown resolved, one answer per key."""
    found = []
    for op in ops:
        definite_answers = []
        for attempt in op.attempts:
            where = {"key": op.key, "op": op.op, "instance": attempt.instance}
            if attempt.outcome == "fail" and (attempt.status or 0) >= 500 and attempt.status != 503:
                request_id = (attempt.response or {}).get("request_id", "")
                found.append(
                    violation(
                        "server_error",
                        f"{op.op} {op.key} got {attempt.status} (request {request_id})",
                        time=attempt.end,
                        **where,
                    )
                )
            elif (
                attempt.outcome == "fail"
                and attempt.definite
                and attempt.code not in EXPECTED_REFUSALS.get(op.op, frozenset())
            ):
                found.append(
                    violation(
                        "unexpected_answer",
                        f"{op.op} {op.key} got {attempt.status} {attempt.code}",
                        time=attempt.end,
                        **where,
                    )
                )
            duration = attempt.duration
            if attempt.end is None or (duration is not None and duration > limits.hang_after_s):
                took = "no end" if duration is None else f"{duration:.1f} s"
                found.append(
                    violation(
                        "hang",
                        f"{op.op} {op.key} attempt {attempt.attempt} took {took} "
                        f"(bound {limits.request_bound_s:g} s + {limits.margin_s:g} s)",
                        time=attempt.start,
                        **where,
                    )
                )
            if attempt.definite and attempt.end is not None:
                definite_answers.append(attempt)
        if op.final is None:
            last = op.attempts[-1]
            found.append(
                violation(
                    "unresolved",
                    f"{op.op} {op.key}: {len(op.attempts)} attempts and no definite answer "
                    f"(the last: {last.outcome} {last.code or last.error or ''})",
                    key=op.key,
                    op=op.op,
                )
            )
        distinct = {_answer(a) for a in definite_answers}
        if len(distinct) > 1:
            found.append(
                violation(
                    "key_executed_twice",
                    f"{op.op} {op.key} got different answers: "
                    + "; ".join(sorted(_describe(a) for a in definite_answers)),
                    key=op.key,
                    op=op.op,
                )
            )
    return found


def _answer(attempt: Attempt) -> tuple[Any, ...]:
    return (attempt.status, repr(_canonical(attempt.response)))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_canonical(v) for v in value)
    return value


def _describe(attempt: Attempt) -> str:
    if attempt.outcome == "ok" and isinstance(attempt.response, dict):
        return f"{attempt.status} {attempt.response.get('id')} {attempt.response.get('status')}"
    return f"{attempt.status} {attempt.code}"
