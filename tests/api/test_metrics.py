"""GET /metrics: Prometheus text with requests, latency, bookings by outcome, lock waits."""

from __future__ import annotations

import pytest

from reservo.metrics import cache_result
from tests.api.conftest import Api, problem
from tests.factories import ResourceFactory

pytestmark = pytest.mark.django_db


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{wanted}}}")


def scrape(api: Api) -> str:
    response = api.http.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text: str = response.content.decode()
    return text


def test_metrics_count_requests_latency_and_booking_outcomes(book_api: Api) -> None:
    resource = ResourceFactory(capacity=1)
    before = scrape(book_api)

    assert (
        book_api.post("/api/v1/reservations/", {"resource": resource.pk, "quantity": 1}).status_code
        == 201
    )
    problem(
        book_api.post("/api/v1/reservations/", {"resource": resource.pk, "quantity": 1}),
        409,
        "sold_out",
    )
    cache_result("availability", "hit")
    after = scrape(book_api)

    def delta(name: str, **labels: str) -> float:
        try:
            old = sample(before, name, **labels)
        except AssertionError:
            old = 0.0
        return sample(after, name, **labels) - old

    route = "/api/v1/reservations/"
    assert delta("reservo_http_requests_total", method="POST", route=route, status="201") == 1
    assert delta("reservo_http_requests_total", method="POST", route=route, status="409") == 1
    assert delta("reservo_http_request_duration_seconds_count", method="POST", route=route) == 2
    assert delta("reservo_bookings_total", outcome="created") == 1
    assert delta("reservo_bookings_total", outcome="sold_out") == 1
    assert delta("reservo_cache_operations_total", cache="availability", result="hit") == 1
    assert "reservo_lock_wait_timeouts_total" in after
