"""The resource detail, the hottest read: its Redis round trips and its cache guarantees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache

from bookings.services import Actor, reservation_book
from resources.selectors import cached_read_keys, resource_represented
from tests.api.conftest import Api
from tests.conftest import make_redis_unreachable
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("read_rate", "sent_with_the_entry"),
    [
        ("100000/min", [b"INCR", b"MGET"]),  # the throttle reads version and entry for the view
        ("", [b"MGET"]),  # no read throttle: the view reads them itself
    ],
)
def test_a_cached_detail_costs_one_redis_round_trip_and_no_query(
    book_api: Api,
    redis_round_trips: list[bytes],
    django_assert_num_queries: Callable[..., Any],
    settings: Any,
    read_rate: str,
    sent_with_the_entry: list[bytes],
) -> None:
    settings.RESERVO_THROTTLE_RATES = {**settings.RESERVO_THROTTLE_RATES, "read": read_rate}
    resource = ResourceFactory(capacity=12)
    detail = f"/api/v1/resources/{resource.pk}/"
    first = book_api.get(detail).json()  # the key's first use, fills the cache

    redis_round_trips.clear()
    with django_assert_num_queries(0):
        assert book_api.get(detail).json() == first
    assert len(redis_round_trips) == 1
    sent = b"".join(redis_round_trips[0])
    assert [command for command in (b"INCR", b"MGET") if command in sent] == sent_with_the_entry


def test_a_cache_hit_is_one_redis_round_trip(redis_round_trips: list[bytes]) -> None:
    resource = ResourceFactory(capacity=12)
    represented = resource_represented(resource.pk, lambda r: {"id": r.pk})

    redis_round_trips.clear()
    assert resource_represented(resource.pk, lambda r: {"missed": True}) == represented
    assert len(redis_round_trips) == 1


@pytest.mark.django_db(transaction=True)
def test_a_cached_detail_reflects_a_booking_right_after_its_commit(
    book_api: Api, other_book_api: Api
) -> None:
    resource = ResourceFactory(capacity=10)
    detail = f"/api/v1/resources/{resource.pk}/"
    assert book_api.get(detail).json()["available"] == 10
    assert other_book_api.get(detail).json()["available"] == 10  # a cache hit

    booked = book_api.post("/api/v1/reservations/", {"resource": resource.pk, "quantity": 3})
    assert booked.status_code == 201, booked.content
    for api in (book_api, other_book_api):
        body = api.get(detail).json()
        assert (body["confirmed"], body["available"]) == (3, 7)

    reservation_book(resource_id=resource.pk, quantity=2, hold=True, actor=Actor("api", "x"))
    body = other_book_api.get(detail).json()
    assert (body["held"], body["confirmed"], body["available"]) == (2, 3, 5)


def test_an_entry_of_an_older_version_is_not_served(
    book_api: Api, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    resource = ResourceFactory(capacity=10)
    detail = f"/api/v1/resources/{resource.pk}/"

    def read_racing_a_booking(r: Any) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            reservation_book(resource_id=resource.pk, quantity=4, actor=Actor("api", "x"))
        return {"available": 10}  # computed before the booking committed

    assert resource_represented(resource.pk, read_racing_a_booking) == {"available": 10}
    assert book_api.get(detail).json()["available"] == 6


def test_a_detail_is_read_from_postgresql_when_redis_is_unreachable(
    book_api: Api, settings: Any
) -> None:
    resource = ResourceFactory(capacity=10)
    detail = f"/api/v1/resources/{resource.pk}/"
    assert book_api.get(detail).json()["available"] == 10
    reservation_book(resource_id=resource.pk, quantity=1, actor=Actor("api", "x"))
    make_redis_unreachable(settings)
    response = book_api.get(detail)
    assert response.status_code == 200
    assert response.json()["available"] == 9


def test_an_unreadable_entry_read_with_the_throttle_is_a_miss(book_api: Api) -> None:
    resource = ResourceFactory(capacity=12)
    redis = cache.client.get_client(write=True)  # type: ignore[attr-defined]
    for key in cached_read_keys("resource", resource.pk):
        redis.set(cache.make_key(key), b"\x80 not a pickle")

    response = book_api.get(f"/api/v1/resources/{resource.pk}/")
    assert response.status_code == 200
    assert response.json()["available"] == 12
