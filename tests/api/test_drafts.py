"""Draft resources are seen by `manage` keys and staff only: not by `book` keys (not even
with ?state=draft), not by the live JSON of the pages, not in refusal messages."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from resources.models import ResourceState
from tests.api.conftest import Api
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db


def draft(**fields: object):  # type: ignore[no-untyped-def]
    return SeatedResourceFactory(name="Secret launch", state=ResourceState.DRAFT, **fields)


def test_book_keys_do_not_list_drafts(book_api: Api, manage_api: Api) -> None:
    hidden, shown = draft(), ResourceFactory()
    for query in ({}, {"state": "draft"}):
        ids = [r["id"] for r in book_api.get("/api/v1/resources/", query).json()["results"]]
        assert hidden.pk not in ids
    assert shown.pk in [r["id"] for r in book_api.get("/api/v1/resources/").json()["results"]]
    managed = manage_api.get("/api/v1/resources/", {"state": "draft"}).json()["results"]
    assert [r["id"] for r in managed] == [hidden.pk]


@pytest.mark.parametrize("path", ["/api/v1/resources/{}/", "/api/v1/resources/{}/seats/"])
def test_book_keys_get_404_for_a_draft(book_api: Api, manage_api: Api, path: str) -> None:
    hidden = draft()
    response = book_api.get(path.format(hidden.pk))
    assert response.status_code == 404
    assert "Secret launch" not in response.content.decode()
    assert manage_api.get(path.format(hidden.pk)).status_code == 200


def test_booking_a_draft_is_no_such_resource_for_book_keys(book_api: Api, manage_api: Api) -> None:
    hidden = draft()
    seat = hidden.seats.first().pk
    response = book_api.post("/api/v1/reservations/", {"resource": hidden.pk, "seats": [seat]})
    body = response.content.decode()
    assert response.status_code == 400
    assert response.json()["errors"] == {"resource": ["No such resource."]}
    assert "Secret launch" not in body
    # A manage key is told why.
    response = manage_api.post("/api/v1/reservations/", {"resource": hidden.pk, "seats": [seat]})
    assert response.status_code == 409
    assert response.json()["code"] == "resource_not_bookable"


def test_the_live_json_hides_drafts_from_all_but_staff(admin_client: Client) -> None:
    hidden, shown = draft(), ResourceFactory()
    one = reverse("bookings:live_resource", args=[hidden.pk])
    several = reverse("bookings:live_resources") + f"?ids={hidden.pk},{shown.pk}"

    assert Client().get(one).status_code == 404
    assert [r["id"] for r in Client().get(several).json()["results"]] == [shown.pk]

    assert admin_client.get(one).status_code == 200
    assert [r["id"] for r in admin_client.get(several).json()["results"]] == [hidden.pk, shown.pk]
