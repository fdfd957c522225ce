"""Fixtures for the chaos tests: an API client with a real key, and a browser."""

from __future__ import annotations

import pytest
from django.test import Client

from bookings.api_keys import api_client_create
from tests.api.conftest import Api


@pytest.fixture
def book_api() -> Api:
    client, key = api_client_create(name="booker", scopes=("book",))
    return Api(key, client)


@pytest.fixture
def page_client() -> Client:
    """A browser: what escapes a middleware comes back as the response, as in production."""
    return Client(raise_request_exception=False)
