"""API clients admin: create (the key shown once), revoke, last use."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from bookings.api_keys import api_client_create, api_client_for_key, api_key_hash
from bookings.models import ApiClient

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/bookings/apiclient/"


def test_create_shows_the_key_once(superuser_client: Client) -> None:
    response = superuser_client.post(
        CHANGELIST + "add/", {"name": "Partner shop", "scopes": ["book", "manage"]}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = response.context["key"]
    assert key in response.content.decode()
    assert "shown only this once" in response.content.decode()
    client = ApiClient.objects.get(name="Partner shop")
    assert client.scopes == ["book", "manage"]
    assert client.key_hash == api_key_hash(key)
    assert api_client_for_key(key) == client
    # Nowhere to be seen again.
    detail = superuser_client.get(f"{CHANGELIST}{client.pk}/change/").content.decode()
    listing = superuser_client.get(CHANGELIST).content.decode()
    assert key not in detail and key not in listing
    assert client.key_prefix in listing


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "scopes": ["book"]}, "name"),
        ({"name": "No scope"}, "scopes"),
        ({"name": "Bad scope", "scopes": ["admin"]}, "scopes"),
    ],
)
def test_create_refusals_are_form_messages(
    superuser_client: Client, data: dict[str, object], field: str
) -> None:
    response = superuser_client.post(CHANGELIST + "add/", data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not ApiClient.objects.exists()


def test_create_with_a_taken_name_is_refused(superuser_client: Client) -> None:
    api_client_create(name="Partner shop", scopes=["book"])
    response = superuser_client.post(
        CHANGELIST + "add/", {"name": "Partner shop", "scopes": ["book"]}
    )
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert ApiClient.objects.count() == 1


def test_revoke_action(superuser_client: Client) -> None:
    live, key = api_client_create(name="Live", scopes=["book"])
    gone, _ = api_client_create(name="Gone", scopes=["book"])
    ApiClient.objects.filter(pk=gone.pk).update(revoked_at=timezone.now())

    response = superuser_client.post(
        CHANGELIST,
        {"action": "revoke_keys", "_selected_action": [live.pk, gone.pk]},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [
        "1 key revoked, 1 was already revoked."
    ]
    live.refresh_from_db()
    assert live.revoked_at is not None
    assert api_client_for_key(key) is None


def test_list_shows_last_use_and_revoked_filter(superuser_client: Client) -> None:
    used, key = api_client_create(name="Used", scopes=["book"])
    api_client_for_key(key)  # records the use
    revoked, _ = api_client_create(name="Revoked", scopes=["manage"])
    ApiClient.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())

    response = superuser_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Last used at" in html and "Revoked at" in html
    row = next(c for c in response.context["cl"].result_list if c.pk == used.pk)
    assert row.last_used_at is not None

    active = superuser_client.get(CHANGELIST + "?revoked_at__isempty=1")
    assert {c.name for c in active.context["cl"].result_list} == {"Used"}


def test_no_delete(superuser_client: Client) -> None:
    client, _ = api_client_create(name="Keep", scopes=["book"])
    assert superuser_client.post(f"{CHANGELIST}{client.pk}/delete/").status_code == 403
    assert ApiClient.objects.filter(pk=client.pk).exists()
