"""Idempotency-Key: one effect per client and key, replays identical, reuse refused,
concurrent duplicates never executed twice, 5xx never recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models.functions import Now
from django.test import override_settings

from bookings.api import idempotency
from bookings.models import IdempotencyRecord, Reservation
from reservo.errors import Busy
from settings_app.models import SystemSettings
from settings_app.selectors import system_settings
from tests.api.conftest import Api, problem
from tests.conftest import outside_connection, run_concurrently, scalar, wait_until
from tests.factories import ResourceFactory, SeatedResourceFactory

pytestmark = pytest.mark.django_db

RESERVATIONS = "/api/v1/reservations/"
KEY = {"Idempotency-Key": "order-42"}


def test_a_replay_returns_the_same_status_and_body_and_books_nothing(book_api: Api) -> None:
    resource = ResourceFactory(capacity=5)
    body = {"resource": resource.pk, "quantity": 2, "customer": {"name": "Ada"}}

    first = book_api.post(RESERVATIONS, body, **KEY)
    again = book_api.post(RESERVATIONS, body, **KEY)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Reservation.objects.count() == 1
    resource.refresh_from_db()
    assert resource.confirmed == 2


def test_the_same_json_in_another_key_order_is_the_same_request(book_api: Api) -> None:
    resource = ResourceFactory()
    first = book_api.post(RESERVATIONS, f'{{"resource": {resource.pk}, "quantity": 1}}', **KEY)
    again = book_api.post(RESERVATIONS, f'{{"quantity":1,"resource":{resource.pk}}}', **KEY)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert Reservation.objects.count() == 1


def test_the_same_key_with_another_body_or_path_is_refused(book_api: Api) -> None:
    resource = ResourceFactory()
    created = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1}, **KEY).json()

    problem(
        book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 2}, **KEY),
        422,
        "idempotency_key_reused",
    )
    problem(
        book_api.post(f"{RESERVATIONS}{created['id']}/cancel/", **KEY),
        422,
        "idempotency_key_reused",
    )
    assert Reservation.objects.get().status == "confirmed"


def test_keys_are_scoped_to_the_client(book_api: Api, other_book_api: Api) -> None:
    resource = ResourceFactory()
    body = {"resource": resource.pk, "quantity": 1}

    mine = book_api.post(RESERVATIONS, body, **KEY)
    theirs = other_book_api.post(RESERVATIONS, body, **KEY)

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert Reservation.objects.count() == 2


def test_a_domain_error_is_recorded_and_replayed(book_api: Api) -> None:
    resource = ResourceFactory(capacity=1)
    body = {"resource": resource.pk, "quantity": 2}

    first = book_api.post(RESERVATIONS, body, **KEY)
    problem(first, 409, "sold_out")
    resource.capacity = 5
    resource.save(update_fields=["capacity"])
    again = book_api.post(RESERVATIONS, body, **KEY)

    assert again.status_code == 409
    assert again.content == first.content
    assert again["Content-Type"].startswith("application/problem+json")
    assert not Reservation.objects.exists()


def test_a_503_is_not_recorded_so_a_retry_can_succeed(
    book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = ResourceFactory()
    body = {"resource": resource.pk, "quantity": 1}
    from bookings.api import views

    real_book = views.reservation_book

    def busy(**kwargs: Any) -> Any:
        raise Busy("try again")

    monkeypatch.setattr(views, "reservation_book", busy)
    problem(book_api.post(RESERVATIONS, body, **KEY), 503, "busy")
    assert not IdempotencyRecord.objects.exists()

    monkeypatch.setattr(views, "reservation_book", real_book)
    assert book_api.post(RESERVATIONS, body, **KEY).status_code == 201
    assert Reservation.objects.count() == 1


def test_a_booking_records_its_answer_and_a_replay_is_that_answer(book_api: Api) -> None:
    """The record holds the first answer, written in the booking's transaction: a replay is
    that answer even after the reservation has changed, whatever the replay's language."""
    resource = SeatedResourceFactory()
    seats = list(resource.seats.order_by("-id").values_list("pk", flat=True)[:2])
    body = {"resource": resource.pk, "seats": seats, "hold": True, "customer": {"name": "Ada"}}

    first = book_api.post(RESERVATIONS, body, **{"Accept-Language": "fr", **KEY})
    assert first.status_code == 201, first.content
    record = IdempotencyRecord.objects.get()
    assert record.response_status == 201
    assert json.loads(record.response_body)["id"] == first.json()["id"]

    book_api.post(f"{RESERVATIONS}{first.json()['id']}/cancel/")
    again = book_api.post(RESERVATIONS, body, **{"Accept-Language": "de", **KEY})

    assert again.status_code == 201
    assert again.content == first.content
    assert again.json()["status"] == "held"
    assert again.json()["seats"] == sorted(seats)
    assert Reservation.objects.count() == 1


def test_a_refusal_is_recorded_with_its_answer(book_api: Api) -> None:
    resource = ResourceFactory(capacity=1)
    first = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 2}, **KEY)
    problem(first, 409, "sold_out")
    record = IdempotencyRecord.objects.get()
    assert record.response_status == 409
    assert json.loads(record.response_body)["code"] == "sold_out"


@pytest.mark.django_db(transaction=True)
def test_an_outcome_answered_with_a_503_is_not_recorded(book_api: Api) -> None:
    """Maintenance turned on after the middleware let the request through: the booking
    refuses it under the resource lock, with a 503, and writes no record."""
    resource = ResourceFactory()
    body = {"resource": resource.pk, "quantity": 1}
    assert not system_settings().maintenance_mode  # now cached
    SystemSettings.objects.update(maintenance_mode=True)  # the cached copy still says off
    assert not system_settings().maintenance_mode

    problem(book_api.post(RESERVATIONS, body, **KEY), 503, "maintenance")
    assert not IdempotencyRecord.objects.exists()

    SystemSettings.objects.update(maintenance_mode=False)
    assert book_api.post(RESERVATIONS, body, **KEY).status_code == 201
    assert Reservation.objects.count() == 1


def test_confirm_and_cancel_are_idempotent_too(book_api: Api) -> None:
    resource = ResourceFactory()
    held = book_api.post(RESERVATIONS, {"resource": resource.pk, "quantity": 1, "hold": True})
    path = f"{RESERVATIONS}{held.json()['id']}/cancel/"

    first = book_api.post(path, **{"Idempotency-Key": "cancel-1"})
    again = book_api.post(path, **{"Idempotency-Key": "cancel-1"})
    other_key = book_api.post(path, **{"Idempotency-Key": "cancel-2"})

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    problem(other_key, 409, "invalid_state")


def test_resource_writes_are_idempotent(manage_api: Api) -> None:
    body = {"name": "Gala", "capacity": 50}
    first = manage_api.post("/api/v1/resources/", body, **KEY)
    again = manage_api.post("/api/v1/resources/", body, **KEY)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert manage_api.get("/api/v1/resources/").json()["count"] == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_duplicates_book_once(book_api: Api) -> None:
    resource = ResourceFactory(capacity=100)
    body = {"resource": resource.pk, "quantity": 1}

    def send(_index: int) -> tuple[int, bytes]:
        response = Api(book_api.key).post(RESERVATIONS, body, **KEY)
        return response.status_code, response.content

    results = run_concurrently(20, send)

    assert not [r for r in results if isinstance(r, BaseException)], results
    created = [content for status, content in results if status == 201]
    in_progress = [content for status, content in results if status == 409]
    assert len(created) + len(in_progress) == 20
    assert len(set(created)) == 1, "every success is the same response"
    assert all(b"idempotency_in_progress" in c for c in in_progress)
    assert Reservation.objects.count() == 1
    resource.refresh_from_db()
    assert resource.confirmed == 1
    assert IdempotencyRecord.objects.count() == 1


@contextmanager
def key_claimed_elsewhere(api: Api, path: str, body: dict[str, Any]) -> Iterator[Any]:
    """The key's record inserted, not yet committed, by another transaction: a first
    request still running. Committing the yielded connection answers it with a 201;
    otherwise it rolls back when the block ends."""
    assert api.client is not None
    answer = {"id": "from-the-first-request"}
    with outside_connection() as first:
        first.execute(
            "INSERT INTO bookings_idempotencyrecord (api_client_id, key, method, path,"
            " request_hash, response_status, response_body, created_at)"
            " VALUES (%s, %s, 'POST', %s, %s, 201, to_jsonb(%s::text), now())",
            [
                api.client.pk,
                KEY["Idempotency-Key"],
                path,
                idempotency.request_hash(json.dumps(body).encode()),
                json.dumps(answer),
            ],
        )
        try:
            yield first
        finally:
            first.rollback()  # unless committed meanwhile


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_waits_for_the_first_request_then_replays_its_answer(
    book_api: Api,
) -> None:
    resource = ResourceFactory(capacity=5)
    body = {"resource": resource.pk, "quantity": 1}
    responses: list[Any] = []
    with key_claimed_elsewhere(book_api, RESERVATIONS, body) as first:
        duplicate = threading.Thread(
            target=lambda: responses.extend(
                run_concurrently(1, lambda i: Api(book_api.key).post(RESERVATIONS, body, **KEY))
            )
        )
        duplicate.start()
        wait_until(
            lambda: scalar("SELECT count(*) FROM pg_locks WHERE NOT granted"),
            10,
            "the duplicate never waited for the first request",
        )
        first.commit()
    duplicate.join(30)
    (response,) = responses
    assert response.status_code == 201
    assert response.json() == {"id": "from-the-first-request"}
    assert response["Idempotent-Replayed"] == "true"
    assert not Reservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_waiting_past_the_lock_bound_is_told_to_retry(book_api: Api) -> None:
    resource = ResourceFactory(capacity=5)
    body = {"resource": resource.pk, "quantity": 1}
    with (
        key_claimed_elsewhere(book_api, RESERVATIONS, body),
        override_settings(RESERVO_LOCK_TIMEOUT_MS=200),
    ):
        response = book_api.post(RESERVATIONS, body, **KEY)
    problem(response, 409, "idempotency_in_progress")
    assert response["Retry-After"]
    assert not Reservation.objects.exists()
    # The first request rolled back (it answered with a 5xx, say): the key is free.
    assert book_api.post(RESERVATIONS, body, **KEY).status_code == 201
    assert Reservation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_a_key_twenty_requests_book_twenty_times(
    book_api: Api,
) -> None:
    resource = ResourceFactory(capacity=100)

    def send(_index: int) -> int:
        return (
            Api(book_api.key)
            .post(RESERVATIONS, {"resource": resource.pk, "quantity": 1})
            .status_code
        )

    assert run_concurrently(20, send) == [201] * 20
    assert Reservation.objects.count() == 20


def test_purge_keeps_records_for_at_least_24_hours(book_api: Api) -> None:
    resource = ResourceFactory()
    for key in ("old", "recent"):
        book_api.post(
            RESERVATIONS, {"resource": resource.pk, "quantity": 1}, **{"Idempotency-Key": key}
        )
    IdempotencyRecord.objects.filter(key="old").update(created_at=Now() - timedelta(hours=25))
    IdempotencyRecord.objects.filter(key="recent").update(created_at=Now() - timedelta(hours=23))

    out = StringIO()
    call_command("purge_idempotency", "--hours", "1", stdout=out)

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]
    assert out.getvalue().startswith("1 ")
    assert idempotency.idempotency_records_purge() == 0


@pytest.mark.django_db(transaction=True)
def test_duplicates_racing_for_the_last_places_under_each_isolation_level(
    book_api: Api, isolation_level: str
) -> None:
    """Eight keys, each sent three times at once, for three places. Each key executes at
    most once, and every answer it gets (during the race, and replayed afterwards) is the
    same, its one recorded answer."""
    resource = ResourceFactory(capacity=3)
    keys = [f"race-{n}" for n in range(8)]

    def send(index: int) -> tuple[str, int, bytes]:
        key = keys[index % len(keys)]
        response = Api(book_api.key).post(
            RESERVATIONS, {"resource": resource.pk, "quantity": 1}, **{"Idempotency-Key": key}
        )
        return key, response.status_code, response.content

    results = run_concurrently(3 * len(keys), send)

    assert not [r for r in results if isinstance(r, BaseException)], results
    # Not answers to the request: another copy was running, or (SERIALIZABLE) the
    # retries ran out. Neither is recorded.
    transient = (b'"idempotency_in_progress"', b'"busy"')
    answers: dict[str, set[bytes]] = {key: set() for key in keys}
    for key, status, content in results:
        if not any(code in content for code in transient):
            assert status in (201, 409), content
            answers[key].add(content)
    assert any(answers.values()), "every answer during the race was transient"
    final = {
        key: book_api.post(
            RESERVATIONS, {"resource": resource.pk, "quantity": 1}, **{"Idempotency-Key": key}
        )
        for key in keys
    }
    for key in keys:
        assert answers[key] <= {final[key].content}, key
    booked = [key for key in keys if final[key].status_code == 201]
    assert len(booked) == 3
    assert all(final[key].json()["code"] == "sold_out" for key in keys if key not in booked)
    assert Reservation.objects.filter(resource=resource).count() == 3
    assert IdempotencyRecord.objects.count() == len(keys)
    resource.refresh_from_db()
    assert resource.held + resource.confirmed == 3


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_booking_rolls_back_the_booking_and_its_record(
    book_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The booking, its record and the answer are one transaction. Should rendering the
    answer fail (a bug: 500), nothing stays and the cached detail is untouched; a retry
    with the same key books, once."""
    from bookings.api import views

    resource = ResourceFactory(capacity=5)
    detail = f"/api/v1/resources/{resource.pk}/"
    assert book_api.get(detail).json()["available"] == 5  # now cached
    body = {"resource": resource.pk, "quantity": 2}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("rendering failed")

    with monkeypatch.context() as patch:
        patch.setattr(views.ReservationListView, "reservation_response", broken)
        failed = Api(book_api.key)
        failed.http.raise_request_exception = False
        assert failed.post(RESERVATIONS, body, **KEY).status_code == 500

    assert not Reservation.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert book_api.get(detail).json()["available"] == 5
    again = book_api.post(RESERVATIONS, body, **KEY)
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert book_api.get(detail).json()["available"] == 3
    assert Reservation.objects.count() == 1
