"""The checker: what the clients were told, against what the database holds.

Input: the history (chaos/history.py, read by chaos/observations.py), the database
sampled during the run and read at its end (chaos/database.py), and the faults. Output:
the figures of the run and its violations, each a dict with a `kind` and a `detail`. Pure
functions over plain data, so that synthetic histories can test it.

Every answer a key gets must be the same one (a replay is byte-identical), so a key
executed twice shows as two different answers, or as two reservations in the database.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.checker.answers import check_answers
from chaos.checker.capacity import check_capacity
from chaos.checker.faults import check_faults, recovery
from chaos.checker.limits import Limits
from chaos.checker.reservations import check_bookings, check_transitions
from chaos.observations import Fault, Operation, Snapshot, operations

__all__ = ["Limits", "Result", "check"]


@dataclass
class Result:
    figures: dict[str, Any]
    violations: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    recovery_s: dict[str, float | None]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def figures(ops: Sequence[Operation]) -> dict[str, Any]:
    attempts = [a for op in ops for a in op.attempts]
    answers = Counter(
        (a.code or str(a.status)) if a.outcome != "unknown" else f"unknown:{a.error}"
        for a in attempts
    )
    latency: dict[str, dict[str, float | None]] = {}
    for name in sorted({op.op for op in ops}):
        durations = [
            d for op in ops if op.op == name for a in op.attempts if (d := a.duration) is not None
        ]
        latency[name] = {
            "p50": _rounded(percentile(durations, 0.5)),
            "p99": _rounded(percentile(durations, 0.99)),
            "max": _rounded(max(durations) if durations else None),
        }
    return {
        "operations": len(ops),
        "acknowledged": sum(op.acknowledged for op in ops),
        "unknown": sum(any(a.outcome == "unknown" for a in op.attempts) for op in ops),
        "refused": sum(op.refused for op in ops),
        "unresolved": sum(op.final is None for op in ops),
        "attempts": len(attempts),
        "unknown_attempts": sum(a.outcome == "unknown" for a in attempts),
        "by_operation": {
            name: {
                "operations": sum(op.op == name for op in ops),
                "acknowledged": sum(op.op == name and op.acknowledged for op in ops),
            }
            for name in sorted({op.op for op in ops})
        },
        "answers": dict(sorted(answers.items())),
        "latency_s": latency,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def check(
    events: Iterable[dict[str, Any]],
    snapshot: Snapshot,
    samples: Sequence[dict[str, Any]],
    faults: Sequence[Fault],
    limits: Limits,
    *,
    skipped: dict[str, str] | None = None,
    worker_timeouts: Sequence[str] = (),
) -> Result:
    ops, _nemesis = operations(events)
    skipped = skipped or {}
    recoveries = recovery(faults, ops)
    violations = (
        check_answers(ops, limits)
        + check_bookings(ops, snapshot)
        + check_transitions(ops, snapshot)
        + check_capacity(ops, snapshot, samples)
        + check_faults(faults, recoveries, limits, skipped, worker_timeouts)
    )
    per_kind: dict[str, float | None] = {}
    for fault, took in zip(faults, recoveries, strict=True):
        if not fault.injected:
            continue
        previous = per_kind.get(fault.kind, 0.0)
        per_kind[fault.kind] = None if took is None or previous is None else max(previous, took)
    return Result(
        figures=figures(ops),
        violations=violations,
        faults=[
            {
                "kind": fault.kind,
                "at": fault.at,
                "healed_at": fault.healed_at,
                "recovery_s": _rounded(took),
                "injected": fault.injected,
                "detail": fault.detail,
            }
            for fault, took in zip(faults, recoveries, strict=True)
        ],
        recovery_s={kind: _rounded(value) for kind, value in sorted(per_kind.items())},
    )
