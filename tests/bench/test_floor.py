"""The benchmark stands apart: its own settings and URLconf route the floor and reference
views, the product neither routes nor imports them."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve

import bench.settings
import reservo.settings
from bench.roundtrips import captured, lock_round_trips
from bench.runner import REFERENCE_PATHS, SETTINGS_MODULE, book_path
from bookings.models import Reservation, ReservationEvent
from resources.models import Resource
from tests.factories import ResourceFactory


def _resource(**fields: Any) -> Resource:
    return cast(Resource, ResourceFactory(**fields))


ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("reservo", "bookings", "resources", "settings_app")
FLOOR_PATHS = ("/bench/floor/get/", "/bench/floor/post/")


def _is_bench(name: str) -> bool:
    return name == "bench" or name.startswith("bench.")


def _bench_references(tree: ast.AST) -> list[str]:
    """Imports of the bench package, and dotted names into it (as `include()` or a
    settings module's name take)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_bench(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found += [node.module] if node.module and _is_bench(node.module) else []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [node.value] if node.value.startswith("bench.") else []
    return found


def test_the_product_imports_and_names_no_benchmark_module() -> None:
    files = [path for package in PRODUCT_PACKAGES for path in (ROOT / package).rglob("*.py")]
    assert len(files) > 20
    offending = {
        str(path.relative_to(ROOT)): names
        for path in files
        if (names := _bench_references(ast.parse(path.read_text(), str(path))))
    }
    assert offending == {}


def test_the_scan_finds_an_import_and_an_include_of_the_benchmark() -> None:
    source = "import bench.floor\nfrom bench import reference\npath('x/', include('bench.urls'))\n"
    assert _bench_references(ast.parse(source)) == ["bench.floor", "bench", "bench.urls"]


def test_the_project_routes_no_benchmark_view() -> None:
    assert settings.ROOT_URLCONF == "reservo.urls"
    for path in (*FLOOR_PATHS, *REFERENCE_PATHS.values()):
        with pytest.raises(Resolver404):
            resolve(path)


def test_the_benchmark_settings_are_the_projects_with_its_own_urls() -> None:
    assert SETTINGS_MODULE == "bench.settings"
    assert bench.settings.ROOT_URLCONF == "bench.urls"
    assert bench.settings.DATABASES == reservo.settings.DATABASES
    assert bench.settings.MIDDLEWARE == reservo.settings.MIDDLEWARE
    assert bench.settings.INSTALLED_APPS == reservo.settings.INSTALLED_APPS


@pytest.mark.urls("bench.urls")
def test_the_benchmark_urls_keep_every_project_route() -> None:
    assert resolve("/healthz").url_name == "healthz"
    assert resolve("/api/v1/reservations/") is not None
    for path in (*FLOOR_PATHS, *REFERENCE_PATHS.values()):
        assert resolve(path) is not None


def test_delayed_scenarios_book_where_their_undelayed_ones_do() -> None:
    assert book_path("naive_book_1ms") == book_path("naive_book") == "/bench/reference/naive/"
    assert book_path("bare_book_1ms") == "/bench/reference/bare/"
    assert book_path("hot_book_1ms") == book_path("hot_book") == ""


@pytest.mark.django_db
@pytest.mark.urls("bench.urls")
def test_floor_views_answer_without_the_database(client: Client) -> None:
    with CaptureQueriesContext(connection) as queries:
        got = client.get("/bench/floor/get/")
        posted = client.post(
            "/bench/floor/post/", {"resource": 7, "quantity": 1}, content_type="application/json"
        )
    # The view itself reads nothing; middleware in front of every write may read the
    # settings row when the shared cache does not have it.
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
@pytest.mark.urls("bench.urls")
@pytest.mark.parametrize("scenario", sorted(REFERENCE_PATHS))
def test_reference_views_book_until_sold_out_and_refuse_bad_bodies(
    client: Client, scenario: str
) -> None:
    path = REFERENCE_PATHS[scenario]
    resource = _resource(capacity=3)
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
    assert _book(client, path, 10**9) == (404, "not_found")


@pytest.mark.django_db
@pytest.mark.urls("bench.urls")
def test_bare_writes_the_services_history_and_naive_the_reservation_only(client: Client) -> None:
    naive, bare = _resource(), _resource()
    assert _book(client, REFERENCE_PATHS["bare_book"], bare.pk) == (201, "")
    assert _book(client, REFERENCE_PATHS["naive_book"], naive.pk) == (201, "")
    events = ReservationEvent.objects.filter(reservation__resource=bare)
    assert list(events.values_list("to_status", flat=True)) == ["confirmed"]
    assert not ReservationEvent.objects.filter(reservation__resource=naive).exists()


def test_round_trips_under_the_lock_count_from_the_locking_statement_to_the_commit() -> None:
    statements = [
        "SET LOCAL lock_timeout = '2s'",
        'SELECT "resources_resource"."id" FROM "resources_resource" WHERE id = 1 FOR UPDATE',
        'INSERT INTO "bookings_reservation" ("reference") VALUES (\'A\') RETURNING "id"',
        'INSERT INTO "bookings_reservationevent" ("to_status") VALUES (\'confirmed\')',
        "COMMIT",
        "SELECT 1",
    ]
    counted = lock_round_trips(statements)
    assert counted["lock_round_trips"] == 3
    assert counted["statements"] == 6
    assert [sql.split()[0] for sql in counted["under_lock"]] == [
        "SELECT",
        "INSERT",
        "INSERT",
        "COMMIT",
    ]
    assert lock_round_trips(statements[2:])["lock_round_trips"] is None  # no lock
    assert lock_round_trips(statements[:3])["lock_round_trips"] is None  # no COMMIT
    # A lock written by hand, as the service may send it, is found as well.
    by_hand = ["SELECT r.* FROM resources_resource r WHERE r.id = 1 FOR NO KEY UPDATE OF r"]
    assert lock_round_trips([*by_hand, "COMMIT"])["lock_round_trips"] == 1


@pytest.mark.django_db(transaction=True)  # the view's own transaction commits
@pytest.mark.urls("bench.urls")
def test_the_naive_view_holds_the_lock_for_two_round_trips(client: Client) -> None:
    resource = _resource()
    statements = captured(lambda: _book(client, REFERENCE_PATHS["naive_book"], resource.pk))
    counted = lock_round_trips(statements)
    # The insert, and the locking statement's answer with the COMMIT's way out.
    assert counted["lock_round_trips"] == 2
    assert counted["under_lock"][1].startswith('INSERT INTO "bookings_reservation"')
