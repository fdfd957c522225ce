"""The availability cache's version: one round trip per invalidation, never fatal."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from resources import selectors
from resources.selectors import availability_invalidate, resource_availability
from tests.api import conftest as api_fixtures
from tests.conftest import cache_errors, make_redis_unreachable
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

redis_round_trips = api_fixtures.redis_round_trips


def test_an_invalidation_is_one_redis_round_trip(redis_round_trips: list[bytes]) -> None:
    resource = ResourceFactory(capacity=5)
    version_key = selectors._version_key(resource.pk)
    assert cache.get(version_key) is None

    redis_round_trips.clear()
    availability_invalidate(resource.pk)
    assert len(redis_round_trips) == 1
    assert cache.get(version_key) == 1
    availability_invalidate(resource.pk)
    assert cache.get(version_key) == 2
    assert cache.ttl(version_key) is None  # type: ignore[attr-defined]


def test_an_invalidation_leaves_the_cached_availability_behind() -> None:
    resource = ResourceFactory(capacity=5)
    assert resource_availability(resource.pk)["available"] == 5  # type: ignore[index]
    type(resource).objects.filter(pk=resource.pk).update(capacity=7)
    assert resource_availability(resource.pk)["available"] == 5  # type: ignore[index]

    availability_invalidate(resource.pk)
    assert resource_availability(resource.pk)["available"] == 7  # type: ignore[index]


def test_an_invalidation_with_redis_unreachable_is_counted_not_raised(settings: Any) -> None:
    resource = ResourceFactory(capacity=5)
    make_redis_unreachable(settings)
    before = cache_errors()
    availability_invalidate(resource.pk)
    assert cache_errors() > before
