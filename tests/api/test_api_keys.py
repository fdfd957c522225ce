"""API keys: generation, hashed storage, verification, revocation, the command."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from bookings import api_keys
from bookings.api_keys import (
    api_client_create,
    api_client_for_key,
    api_client_revoke,
    api_key_prefix_of,
)
from bookings.models import ApiClient
from reservo.errors import NotFound, ValidationFailed
from tests.api.conftest import Api, problem

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_only_as_prefix_and_sha256() -> None:
    client, key = api_client_create(name="shop", scopes=["book"])

    prefix = api_key_prefix_of(key)
    assert key.startswith(f"rsv_{prefix}_")
    client.refresh_from_db()
    assert client.key_prefix == prefix
    assert client.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {client.key_hash, client.key_prefix}
    assert api_client_for_key(key) == client


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # wrong secret
        lambda key: key.replace("rsv_", "xyz_"),
        lambda key: "rsv_nothing",
        lambda key: "",
    ],
)
def test_a_wrong_key_finds_no_client(mangle: Callable[[str], str]) -> None:
    _client, key = api_client_create(name="shop", scopes=["book"])
    assert api_client_for_key(mangle(key)) is None


def test_scopes_are_validated_and_names_unique() -> None:
    with pytest.raises(ValidationFailed):
        api_client_create(name="shop", scopes=["admin"])
    with pytest.raises(ValidationFailed):
        api_client_create(name="shop", scopes=[])
    api_client_create(name="shop", scopes=["book", "manage"])
    with pytest.raises(ValidationFailed):
        api_client_create(name="shop", scopes=["book"])


def test_a_revoked_key_no_longer_authenticates() -> None:
    client, key = api_client_create(name="shop", scopes=["book"])
    api = Api(key)
    assert api.get("/api/v1/resources/").status_code == 200

    revoked = api_client_revoke(client_id=client.pk)

    assert revoked.revoked_at is not None
    assert api_client_revoke(client_id=client.pk).revoked_at == revoked.revoked_at
    problem(api.get("/api/v1/resources/"), 401, "not_authenticated")
    with pytest.raises(NotFound):
        api_client_revoke(client_id=client.pk + 1000)


def test_last_used_is_written_at_most_once_a_minute(
    django_assert_num_queries: Callable[..., object],
) -> None:
    client, key = api_client_create(name="shop", scopes=["book"])
    assert client.last_used_at is None

    api_client_for_key(key)
    client.refresh_from_db()
    first_use = client.last_used_at
    assert first_use is not None
    with django_assert_num_queries(0):  # known to this process for a second: no lookup, no write
        api_client_for_key(key)
    forget_known_keys()  # as another process, or this one a second later, would
    with django_assert_num_queries(1):  # the lookup only, no write
        api_client_for_key(key)
    client.refresh_from_db()
    assert client.last_used_at == first_use

    ApiClient.objects.filter(pk=client.pk).update(
        last_used_at=timezone.now() - timedelta(minutes=2)
    )
    forget_known_keys()
    api_client_for_key(key)
    client.refresh_from_db()
    assert client.last_used_at > timezone.now() - timedelta(minutes=1)


def test_create_api_client_command_prints_only_the_key_on_stdout() -> None:
    out, err = StringIO(), StringIO()
    call_command("create_api_client", "partner", "--scopes", "book,manage", stdout=out, stderr=err)

    key = out.getvalue().strip()
    assert "\n" not in key
    client = api_client_for_key(key)
    assert client is not None
    assert client.name == "partner"
    assert sorted(client.scopes) == ["book", "manage"]
    assert "store it now" in err.getvalue()
    assert Api(key).get("/api/v1/analytics/bookings/").status_code == 200


def test_create_api_client_command_with_a_taken_name_prints_nothing_and_fails() -> None:
    call_command("create_api_client", "partner", stdout=StringIO(), stderr=StringIO())
    out = StringIO()
    with pytest.raises(CommandError, match="exists"):
        call_command("create_api_client", "partner", stdout=out, stderr=StringIO())
    assert out.getvalue() == ""


def test_create_api_client_command_refuses_unknown_scopes() -> None:
    with pytest.raises(CommandError):
        call_command("create_api_client", "partner", "--scopes", "book,root", stdout=StringIO())
    assert not ApiClient.objects.exists()


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "Api-Key", "Api-Key rsv_unknown_secret", "Token rsv_a_b"],
)
def test_malformed_or_unknown_authorization_is_401(header: str) -> None:
    api = Api()
    response = api.http.get("/api/v1/resources/", headers={"Authorization": header})
    problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"


def forget_known_keys() -> None:
    api_keys._clients_by_key_hash.clear()


def test_a_revocation_elsewhere_reaches_this_process_within_a_second(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, key = api_client_create(name="elsewhere", scopes=["book"])
    assert api_client_for_key(key) == client
    # Another instance revokes the key: this process may use what it knows for a second...
    ApiClient.objects.filter(pk=client.pk).update(revoked_at=timezone.now())
    assert api_client_for_key(key) == client
    # ...and not longer.
    later = time.monotonic() + api_keys.CLIENT_CACHE_SECONDS + 0.01
    monkeypatch.setattr(api_keys.time, "monotonic", lambda: later)
    assert api_client_for_key(key) is None


def test_a_revocation_here_takes_effect_at_once() -> None:
    client, key = api_client_create(name="here", scopes=["book"])
    assert api_client_for_key(key) == client
    api_client_revoke(client_id=client.pk)
    assert api_client_for_key(key) is None
