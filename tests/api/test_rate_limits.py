"""API rate limits: real per-client defaults, and a per-address limit on requests without
a valid key (none, or a wrong one), counted in Redis and not applied when it is down."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client, override_settings

from bookings.api.base import ClientRateThrottle
from reservo import limits
from tests.api.conftest import Api, problem
from tests.conftest import make_redis_unreachable
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db

RESOURCES = "/api/v1/resources/"
ADDRESS = "203.0.113.7"
ANONYMOUS_RATE = {
    "read": "1000/min",
    "book": "1000/min",
    "manage": "1000/min",
    "anonymous": "5/min",
}
# 30 s into a minute, an hour and ten minutes; hours into a day.
MID_WINDOW = 1_800_000_030.0


@pytest.fixture(autouse=True)
def _mid_window_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting windows are fixed: pin the clock inside one, so that no burst of a test
    straddles two."""
    monkeypatch.setattr(limits, "clock", lambda: MID_WINDOW)
    monkeypatch.setattr(ClientRateThrottle, "clock", staticmethod(lambda: MID_WINDOW))


def from_address(key: str | None = None, address: str = ADDRESS, **extra: str) -> Api:
    api = Api(key)
    api.http = Client(REMOTE_ADDR=address, **extra)
    return api


def test_the_default_rates_are_real_limits(settings: Any) -> None:
    rates = {
        scope: limits.parse_rate(rate) for scope, rate in settings.RESERVO_THROTTLE_RATES.items()
    }
    per_minute = {
        scope: rate.limit * 60 / rate.period for scope, rate in rates.items() if rate is not None
    }
    assert set(per_minute) == {"read", "book", "manage", "anonymous"}
    assert per_minute["read"] <= 1000
    assert per_minute["book"] <= 200
    assert per_minute["manage"] <= 200
    assert per_minute["anonymous"] <= 60


def test_rates_read_counts_and_periods() -> None:
    assert limits.parse_rate("600/min") == limits.Rate(600, 60)
    assert limits.parse_rate("10/10min") == limits.Rate(10, 600)
    assert limits.parse_rate("5/h") == limits.Rate(5, 3600)
    assert limits.parse_rate("2/day") == limits.Rate(2, 86400)
    assert limits.parse_rate("") is None
    with pytest.raises(ValueError, match="rate"):
        limits.parse_rate("lots")


def test_the_default_limit_stops_a_burst_of_wrong_keys(settings: Any) -> None:
    rate = limits.parse_rate(settings.RESERVO_THROTTLE_RATES["anonymous"])
    assert rate is not None
    statuses = [
        from_address(f"rsv_{i:012x}_not-a-key").get(RESOURCES).status_code
        for i in range(rate.limit + 1)
    ]
    assert statuses[: rate.limit] == [401] * rate.limit
    assert statuses[-1] == 429


@override_settings(RESERVO_THROTTLE_RATES=ANONYMOUS_RATE)
def test_a_burst_of_wrong_keys_from_one_address_is_rate_limited(book_api: Api) -> None:
    wrong = [from_address(f"rsv_{i:012x}_not-a-key").get(RESOURCES) for i in range(5)]
    assert [response.status_code for response in wrong] == [401] * 5

    limited = from_address("rsv_000000000000_still-wrong").get(RESOURCES)

    problem(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 60
    # A valid key from the same address has its own (per-client) rate.
    valid = from_address(book_api.key).get(RESOURCES)
    assert valid.status_code == 200
    # Another address is counted apart.
    assert from_address("rsv_0_x", address="198.51.100.20").get(RESOURCES).status_code == 401


@override_settings(RESERVO_THROTTLE_RATES=ANONYMOUS_RATE)
def test_a_burst_without_a_key_is_rate_limited() -> None:
    statuses = [from_address().get(RESOURCES).status_code for _ in range(5)]
    posted = from_address().post("/api/v1/reservations/", {"resource": 1, "quantity": 1})

    assert statuses == [401] * 5
    problem(posted, 429, "rate_limited")
    assert int(posted["Retry-After"]) >= 1


@override_settings(RESERVO_THROTTLE_RATES=ANONYMOUS_RATE)
def test_ipv6_clients_are_counted_by_their_64() -> None:
    statuses = [
        from_address(address=f"2001:db8:1:2::{i + 1:x}").get(RESOURCES).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert from_address(address="2001:db8:1:3::1").get(RESOURCES).status_code == 401


@override_settings(RESERVO_THROTTLE_RATES=ANONYMOUS_RATE, RESERVO_BEHIND_PROXY=True)
def test_behind_a_proxy_the_last_forwarded_address_is_counted() -> None:
    """The client's own X-Forwarded-For entries change nothing: the proxy's counts."""
    statuses = [
        from_address(address="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, {ADDRESS}")
        .get(RESOURCES)
        .status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    other = from_address(address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert other.get(RESOURCES).status_code == 401


def test_a_burst_over_a_clients_book_rate_is_429_with_retry_after(book_api: Api) -> None:
    resource = ResourceFactory(capacity=50)
    rates = {"read": "1000/min", "book": "3/min", "manage": "1000/min"}
    with override_settings(RESERVO_THROTTLE_RATES=rates):
        statuses = [
            book_api.post("/api/v1/reservations/", {"resource": resource.pk, "quantity": 1})
            for _ in range(4)
        ]
    assert [response.status_code for response in statuses[:3]] == [201] * 3
    problem(statuses[3], 429, "rate_limited")
    assert int(statuses[3]["Retry-After"]) >= 1


def test_requests_without_a_key_pass_and_a_line_is_logged_when_redis_is_down(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.RESERVO_THROTTLE_RATES = {**ANONYMOUS_RATE, "anonymous": "1/min"}
    make_redis_unreachable(settings)

    with caplog.at_level(logging.WARNING, logger=settings.DJANGO_REDIS_LOGGER):
        statuses = [from_address("rsv_0_wrong").get(RESOURCES).status_code for _ in range(3)]

    assert statuses == [401] * 3
    assert any(
        "api-anonymous limit not applied" in record.getMessage() for record in caplog.records
    )
