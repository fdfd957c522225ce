"""Per-client throttling: one Redis round trip per request, fixed windows, fails open."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from bookings.api.base import ClientRateThrottle
from bookings.models import ApiClient
from tests.api.conftest import Api
from tests.conftest import cache_errors, make_redis_unreachable
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

NOW = 1_800_000_030.0  # 30 s into a minute window


def throttle_at(instant: float) -> ClientRateThrottle:
    throttle = ClientRateThrottle()
    throttle.clock = staticmethod(lambda: instant)  # type: ignore[method-assign]
    return throttle


def read_request(client: ApiClient) -> Any:
    return SimpleNamespace(auth=client, method="GET")


def test_each_request_is_counted_in_one_redis_round_trip(
    book_api: Api, redis_round_trips: list[bytes]
) -> None:
    assert isinstance(book_api.client, ApiClient)
    request = read_request(book_api.client)
    allowed = []
    with override_settings(RESERVO_THROTTLE_RATES={"read": "3/min"}):
        for _ in range(4):
            redis_round_trips.clear()
            throttle = throttle_at(NOW)
            allowed.append(throttle.allow_request(request, None))  # type: ignore[arg-type]
            assert len(redis_round_trips) == 1
    assert allowed == [True, True, True, False]
    assert throttle.wait() == 30


def test_a_new_window_starts_a_new_count(book_api: Api) -> None:
    assert isinstance(book_api.client, ApiClient)
    request = read_request(book_api.client)
    with override_settings(RESERVO_THROTTLE_RATES={"read": "1/min"}):
        assert throttle_at(NOW).allow_request(request, None)  # type: ignore[arg-type]
        assert not throttle_at(NOW + 29).allow_request(request, None)  # type: ignore[arg-type]
        assert throttle_at(NOW + 30).allow_request(request, None)  # type: ignore[arg-type]


def test_the_counter_lives_under_the_cache_prefix_and_expires_after_its_window(
    book_api: Api,
) -> None:
    assert isinstance(book_api.client, ApiClient)
    request = read_request(book_api.client)
    key = f"throttle:read:{book_api.client.pk}:{int(NOW // 60)}"
    with override_settings(RESERVO_THROTTLE_RATES={"read": "5/min"}):
        for _ in range(2):
            throttle_at(NOW).allow_request(request, None)  # type: ignore[arg-type]

    assert cache.get(key) == 2
    ttl = cache.ttl(key)  # type: ignore[attr-defined]
    assert ttl is not None and 0 < ttl <= 61
    # The suite clears only its own prefix between tests; that must reach the counter.
    cache.delete_pattern("*")  # type: ignore[attr-defined]
    assert cache.get(key) is None


def test_throttling_fails_open_when_redis_is_unreachable(book_api: Api, settings: Any) -> None:
    assert isinstance(book_api.client, ApiClient)
    resource = ResourceFactory(capacity=10)
    book_api.get("/api/v1/resources/")  # the key is known before Redis goes away
    make_redis_unreachable(settings)
    rates = {"read": "1/min", "book": "1/min", "manage": "1/min"}
    with override_settings(RESERVO_THROTTLE_RATES=rates):
        before = cache_errors()
        assert throttle_at(NOW).allow_request(read_request(book_api.client), None)  # type: ignore[arg-type]
        assert cache_errors() > before, "the cache failure must be counted"

        for _ in range(3):
            assert book_api.get("/api/v1/resources/").status_code == 200
            detail = book_api.get(f"/api/v1/resources/{resource.pk}/")
            assert detail.status_code == 200
        for _ in range(2):
            booked = book_api.post(
                "/api/v1/reservations/", {"resource": resource.pk, "quantity": 1}
            )
            assert booked.status_code == 201, booked.content
    assert book_api.get(f"/api/v1/resources/{resource.pk}/").json()["available"] == 8
