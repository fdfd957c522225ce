"""Shared fixtures. Every test runs on real PostgreSQL (embedded unless DATABASE_URL is set)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, connections

from bookings.services import Actor
from tests.factories import ResourceFactory, SeatedResourceFactory

CUSTOMER = Actor("customer")


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def customer() -> Actor:
    return CUSTOMER


@pytest.fixture
def resource_factory() -> type[ResourceFactory]:
    return ResourceFactory


@pytest.fixture
def seated_factory() -> type[SeatedResourceFactory]:
    return SeatedResourceFactory


def run_concurrently(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Run work(0..count-1) in `count` real threads released together by a barrier.

    Each thread uses its own database connection and closes it. Returns, in index
    order, what each call returned or the exception it raised.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # collected, asserted by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a concurrent call hung"
    return results


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
    return row[0] if row else None
