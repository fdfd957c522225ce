"""The bounds a chaos run is held to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds the run is held to."""

    request_bound_s: float  # gunicorn's request timeout: past it a worker is killed
    margin_s: float  # queueing and client overhead on top of it
    recovery_limit_s: float  # after a fault heals, bookings succeed again within this
    expected_faults: frozenset[str] = frozenset()

    @property
    def hang_after_s(self) -> float:
        return self.request_bound_s + self.margin_s
