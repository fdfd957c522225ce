"""After each fault: bookings succeed again (the recovery time), and every kind was
injected."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaos.checker.limits import Limits
from chaos.observations import BOOK_OPS, Fault, Operation, violation


def recovery(faults: Sequence[Fault], ops: Sequence[Operation]) -> list[float | None]:
    """For each fault: seconds from its heal to the end of the first booking, sent after
    the heal, that was acknowledged (None: none was)."""
    booked = sorted(
        (a.start, a.end)
        for op in ops
        if op.op in BOOK_OPS
        for a in op.attempts
        if a.outcome == "ok" and a.end is not None
    )
    found: list[float | None] = []
    for fault in faults:
        after = [end - fault.healed_at for start, end in booked if start >= fault.healed_at]
        found.append(min(after) if after else None)
    return found


def check_faults(
    faults: Sequence[Fault],
    recoveries: Sequence[float | None],
    limits: Limits,
    skipped: dict[str, str],
    worker_timeouts: Sequence[str],
) -> list[dict[str, Any]]:
    found = []
    for fault, took in zip(faults, recoveries, strict=True):
        if fault.injected and (took is None or took > limits.recovery_limit_s):
            found.append(
                violation(
                    "no_recovery",
                    f"after {fault.kind} healed, "
                    + (
                        "no booking succeeded"
                        if took is None
                        else f"bookings succeeded again only after {took:.1f} s"
                    )
                    + f" (limit {limits.recovery_limit_s:g} s)",
                    fault=fault.kind,
                    time=fault.healed_at,
                )
            )
    injected = {fault.kind for fault in faults if fault.injected}
    for kind in sorted(limits.expected_faults - injected - set(skipped)):
        reasons = [f.detail for f in faults if f.kind == kind]
        found.append(
            violation(
                "fault_not_injected",
                f"{kind} was never injected under load"
                + (f" ({'; '.join(reasons)})" if reasons else ""),
                fault=kind,
            )
        )
    found += [
        violation("hang", f"gunicorn killed a worker past the request timeout: {line}")
        for line in worker_timeouts
    ]
    return found
