"""The floor and reference views exist only on a server started with RESERVO_BENCH_FLOOR=1."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, clear_url_caches, resolve

import reservo.urls
from bench.runner import REFERENCE_PATHS
from bookings.models import Reservation, ReservationEvent
from tests.factories import ResourceFactory

FLOOR_PATHS = ("/bench/floor/get/", "/bench/floor/post/")


def _reload_urls() -> None:
    importlib.reload(reservo.urls)
    clear_url_caches()


@pytest.fixture
def floor_routed() -> Iterator[None]:
    try:
        with override_settings(RESERVO_BENCH_FLOOR=True):
            _reload_urls()
            yield
    finally:
        _reload_urls()


def test_floor_and_references_are_not_routed_by_default() -> None:
    assert settings.RESERVO_BENCH_FLOOR is False
    _reload_urls()
    for path in (*FLOOR_PATHS, *REFERENCE_PATHS.values()):
        with pytest.raises(Resolver404):
            resolve(path)


@pytest.mark.django_db
@pytest.mark.usefixtures("floor_routed")
def test_floor_views_answer_without_the_database(client: Client) -> None:
    with CaptureQueriesContext(connection) as queries:
        got = client.get("/bench/floor/get/")
        posted = client.post(
            "/bench/floor/post/", {"resource": 7, "quantity": 1}, content_type="application/json"
        )
    # The view itself reads nothing; the maintenance middleware, in front of every write,
    # may read the settings row when the shared cache does not have it.
    assert all("settings_app_systemsettings" in q["sql"] for q in queries.captured_queries)
    assert got.status_code == 200
    assert got.json()["available"] == 3000
    assert posted.status_code == 201
    assert posted.json() == {"resource": 7, "quantity": 1}
    assert (
        client.post("/bench/floor/post/", "[", content_type="application/json").status_code == 400
    )
    assert client.post("/bench/floor/get/").status_code == 405


def _book(client: Client, path: str, resource: int, quantity: int = 1) -> tuple[int, str]:
    response = client.post(
        path, {"resource": resource, "quantity": quantity}, content_type="application/json"
    )
    return response.status_code, response.json().get("code", "")


@pytest.mark.django_db
@pytest.mark.usefixtures("floor_routed")
@pytest.mark.parametrize("scenario", sorted(REFERENCE_PATHS))
def test_reference_views_book_until_sold_out_and_refuse_bad_bodies(
    client: Client, scenario: str
) -> None:
    path = REFERENCE_PATHS[scenario]
    resource = ResourceFactory(capacity=3)
    assert _book(client, path, resource.pk, 2) == (201, "")
    assert _book(client, path, resource.pk) == (201, "")
    assert _book(client, path, resource.pk) == (409, "sold_out")
    resource.refresh_from_db()
    assert (resource.confirmed, resource.held) == (3, 0)
    rows = Reservation.objects.filter(resource=resource)
    assert sorted(rows.values_list("quantity", flat=True)) == [1, 2]
    assert all(r.status == Reservation.Status.CONFIRMED and r.reference for r in rows)
    for bad in ("[", '{"resource": 1}', '{"resource": 1, "quantity": 0}'):
        response = client.post(path, bad, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert client.get(path).status_code == 405


@pytest.mark.django_db
@pytest.mark.usefixtures("floor_routed")
def test_ceiling_writes_what_the_service_writes_and_naive_only_the_reservation(
    client: Client,
) -> None:
    naive, ceiling = ResourceFactory(), ResourceFactory()
    with CaptureQueriesContext(connection) as queries:
        assert _book(client, REFERENCE_PATHS["ceiling_book"], ceiling.pk) == (201, "")
    # One round trip: the service's reservo_book call, in autocommit.
    booking_calls = [q for q in queries.captured_queries if "reservo_book" in q["sql"]]
    assert len(booking_calls) == 1
    others = [q for q in queries.captured_queries if q not in booking_calls]
    assert all("settings_app_systemsettings" in q["sql"] for q in others)
    assert _book(client, REFERENCE_PATHS["naive_book"], naive.pk) == (201, "")
    events = ReservationEvent.objects.filter(reservation__resource=ceiling)
    assert list(events.values_list("to_status", "actor")) == [("confirmed", "api:bench-reference")]
    assert not ReservationEvent.objects.filter(reservation__resource=naive).exists()
    assert _book(client, REFERENCE_PATHS["naive_book"], 10**9) == (404, "not_found")
    assert _book(client, REFERENCE_PATHS["ceiling_book"], 10**9) == (409, "not_found")
