"""The API's content negotiation answers the usual request at once, and every request as
DRF's own negotiation does."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import Http404
from django.test import RequestFactory
from rest_framework.exceptions import APIException
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from bookings.api.base import ApiView, JsonFirstNegotiation

ACCEPT_HEADERS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html",
    "text/html, application/json;q=0.9",
    "application/xml",
    "",
]
QUERY_STRINGS = ["", "format=json", "format=api", "format=xml", "page=2"]


def outcome(negotiation: Any, accept: str | None, query: str, renderers: list[Any]) -> Any:
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    request = Request(RequestFactory().get(f"/api/v1/resources/?{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except (APIException, Http404) as refused:  # 406, or 404 for an unknown ?format=
        return type(refused)
    return type(renderer), media_type


@pytest.mark.parametrize(
    "renderer_classes", [ApiView.renderer_classes, [JSONRenderer, BrowsableAPIRenderer]]
)
@pytest.mark.parametrize("query", QUERY_STRINGS)
@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_it_chooses_what_drf_chooses(
    accept: str | None, query: str, renderer_classes: list[type[BaseRenderer]]
) -> None:
    renderers = [renderer() for renderer in renderer_classes]
    assert outcome(JsonFirstNegotiation(), accept, query, renderers) == outcome(
        DefaultContentNegotiation(), accept, query, renderers
    )


def test_the_api_uses_it() -> None:
    assert ApiView.content_negotiation_class is JsonFirstNegotiation


@pytest.mark.parametrize(("accept", "status"), [("text/html", 406), ("*/*", 200), (None, 200)])
def test_through_the_api(book_api: Any, accept: str | None, status: int) -> None:
    reply = book_api.get("/api/v1/resources/", **({"Accept": accept} if accept else {}))
    assert reply.status_code == status
    if status == 200:
        assert reply["Content-Type"] == "application/json"
