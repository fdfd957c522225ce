"""The ways in that the fault tests use, each prepared before a fault is installed and
sent while it is: a booking and a read, through the API and through the pages; and what
a client must get when the database fails under them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client
from django.urls import reverse

from bookings.models import Reservation
from tests.api.conftest import Api, problem
from tests.chaos.fault_injection import LEAKED_DETAIL
from tests.web.conftest import form_token

RESERVATIONS = "/api/v1/reservations/"
Send = Callable[[], Any]


def api_write(api: Api, resource: Any) -> Send:
    body = {
        "resource": resource.pk,
        "quantity": 1,
        "customer": {"name": "Ada", "email": "ada@example.com"},
    }
    return lambda: api.post(RESERVATIONS, body)


def page_write(client: Client, resource: Any) -> Send:
    """The hold form of the resource's page, submitted (a success redirects, 302)."""
    url = reverse("bookings:resource", args=[resource.slug])
    token = form_token(client, url)
    return lambda: client.post(url, {"form_token": token, "quantity": 1})


def api_read(api: Api, resource: Any) -> Send:
    return lambda: api.get(f"/api/v1/resources/{resource.pk}/")


def page_read(client: Client, resource: Any) -> Send:
    return lambda: client.get(reverse("bookings:home"))


def nothing_leaked(body: bytes, sqlstate: str = "") -> None:
    text = body.decode()
    for secret in (LEAKED_DETAIL, "reservo-internal", "bookings_reservation", "Traceback"):
        assert secret not in text, text[:2000]
    assert "psycopg" not in text.lower() and "sqlstate" not in text.lower(), text[:2000]
    if sqlstate:
        assert sqlstate not in text, text[:2000]


def api_503(response: Any, code: str, sqlstate: str = "") -> None:
    """A 503 problem `code` with Retry-After, and nothing of the database's error."""
    problem(response, 503, code)
    assert int(response["Retry-After"]) >= 1
    nothing_leaked(response.content, sqlstate)


def page_503(response: Any, code: str, sqlstate: str = "") -> None:
    """The friendly 503 page for `code` with Retry-After, and nothing of the database's error."""
    assert response.status_code == 503, (response.status_code, response.content[:2000])
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) >= 1
    assert f'data-error-code="{code}"' in response.content.decode()
    nothing_leaked(response.content, sqlstate)


def nothing_booked(resource: Any) -> None:
    assert not Reservation.objects.exists()
    resource.refresh_from_db()
    assert (resource.held, resource.confirmed) == (0, 0)
