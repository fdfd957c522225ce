"""Fixtures for the v1 API tests: API clients with real keys and an HTTP client per key."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from redis.connection import AbstractConnection

from bookings.api_keys import api_client_create
from bookings.models import ApiClient


class Api:
    """A JSON HTTP client sending `Authorization: Api-Key <key>` (or nothing)."""

    def __init__(self, key: str | None = None, client: ApiClient | None = None) -> None:
        self.key = key
        self.client = client
        self.http = Client()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Api-Key {self.key}"} if self.key else {}
        headers.update(extra or {})
        return headers

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.http.get(path, params or {}, headers=self.headers(headers))

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        raw = body if isinstance(body, str | bytes) else json.dumps(body)
        return getattr(self.http, method)(
            path, raw, content_type="application/json", headers=self.headers(headers)
        )

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self._send("post", path, {} if body is None else body, headers)

    def patch(self, path: str, body: Any = None, **headers: str) -> Any:
        return self._send("patch", path, {} if body is None else body, headers)

    def delete(self, path: str, **headers: str) -> Any:
        return self.http.delete(path, headers=self.headers(headers))


@pytest.fixture
def make_api(db: None) -> Callable[..., Api]:
    def make(*scopes: str, name: str | None = None) -> Api:
        client, key = api_client_create(
            name=name or f"client-{ApiClient.objects.count() + 1}-{'-'.join(scopes)}",
            scopes=scopes or ("book",),
        )
        return Api(key, client)

    return make


@pytest.fixture
def book_api(make_api: Callable[..., Api]) -> Api:
    return make_api("book", name="booker")


@pytest.fixture
def other_book_api(make_api: Callable[..., Api]) -> Api:
    return make_api("book", name="other-booker")


@pytest.fixture
def manage_api(make_api: Callable[..., Api]) -> Api:
    return make_api("manage", name="manager")


@pytest.fixture
def anonymous_api() -> Api:
    return Api()


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the response is the RFC 9457 problem `code` with `status`; return its body."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == "/problems/" + code.replace("_", "-")
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def redis_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What is sent to Redis, one item per round trip (a pipeline is sent in one piece)."""
    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def counted(connection: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        send(connection, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent
