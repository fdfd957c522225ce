"""The one retry mechanism for whole transactions: conflicts are retried, a bounded
number of times; anything else goes up at once."""

from __future__ import annotations

import psycopg.errors
import pytest
from django.db import OperationalError

from bookings.locking import is_retryable_conflict, retrying_conflicts
from reservo.errors import Busy, SoldOut


def conflict() -> OperationalError:
    try:
        raise OperationalError("could not serialize access") from (
            psycopg.errors.SerializationFailure()
        )
    except OperationalError as error:
        return error


def busy_from_deadlock() -> Busy:
    try:
        raise Busy() from psycopg.errors.DeadlockDetected()
    except Busy as error:
        return error


def test_a_conflict_is_retried_until_the_transaction_gets_through(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_SERIALIZATION_RETRIES = 5
    failures = [conflict(), busy_from_deadlock()]
    calls = []

    def attempt() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "booked"

    assert retrying_conflicts(attempt) == "booked"
    assert len(calls) == 3


def test_retries_are_bounded(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RESERVO_SERIALIZATION_RETRIES = 3
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise busy_from_deadlock()

    with pytest.raises(Busy):
        retrying_conflicts(attempt)
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise SoldOut(available=0)

    with pytest.raises(SoldOut):
        retrying_conflicts(attempt)
    assert len(calls) == 1
    assert not is_retryable_conflict(SoldOut(available=0))
