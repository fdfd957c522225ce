"""The floor views exist only on a server started with RESERVO_BENCH_FLOOR=1."""

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


def test_floor_is_not_routed_by_default() -> None:
    assert settings.RESERVO_BENCH_FLOOR is False
    _reload_urls()
    for path in ("/bench/floor/get/", "/bench/floor/post/"):
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
