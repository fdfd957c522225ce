"""Every database failure is a 503 with Retry-After, never a 500, on every path: the API
(problem+json) and the pages (the friendly error page), writes and reads. The errors are
raised by the real database, one test per SQLSTATE class; the mapping goes by SQLSTATE,
never by message text, and nothing of the error reaches the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.db import DatabaseError, InternalError, OperationalError, connection
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from bookings.models import ApiClient
from reservo import error_pages
from reservo.errors import Busy, Unavailable, database_error_to_domain
from tests.api.conftest import Api
from tests.api.test_api_keys import forget_known_keys
from tests.chaos.entry_points import (
    RESERVATIONS,
    api_503,
    api_read,
    api_write,
    nothing_booked,
    nothing_leaked,
    page_503,
    page_read,
    page_write,
)
from tests.chaos.fault_injection import (
    LEAKED_DETAIL,
    on_insert_into,
    on_read_of,
    raising,
    read_only_database,
)
from tests.factories import ResourceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# SQLSTATE -> the problem code it must become. Class 08: connection exceptions (08P01 is
# also what PgBouncer sends); 53: disk full, out of memory, too many connections; 57P01-03:
# admin shutdown, crash shutdown, cannot connect now. 40001/40P01 reach the client only
# after the booking path's bounded retries.
UNAVAILABLE = ["08006", "08P01", "53100", "53200", "53300", "57P01", "57P02", "57P03"]
BUSY = ["40001", "40P01"]
EXPECTED = {**dict.fromkeys(UNAVAILABLE, "unavailable"), **dict.fromkeys(BUSY, "busy")}
RETRIES = 3


def failing_writes(sqlstate: str) -> AbstractContextManager[Callable[[], int]]:
    return on_insert_into("bookings_reservation", raising(sqlstate))


def failing_reads(sqlstate: str) -> AbstractContextManager[Callable[[], int]]:
    return on_read_of("resources_resource", raising(sqlstate))


@pytest.fixture(autouse=True)
def _bounded_retries() -> Iterator[None]:
    with override_settings(RESERVO_SERIALIZATION_RETRIES=RETRIES):
        yield


def ran_within_retries(calls: int, sqlstate: str) -> None:
    """The fault fired; a conflict was retried, and only a bounded number of times."""
    if sqlstate in BUSY:
        assert 2 <= calls <= RETRIES + 1, calls
    else:
        assert calls >= 1


@pytest.mark.parametrize("sqlstate", UNAVAILABLE + BUSY)
def test_api_booking_on_a_failing_database_is_a_503_problem(book_api: Api, sqlstate: str) -> None:
    resource = ResourceFactory(capacity=5)
    send = api_write(book_api, resource)
    with failing_writes(sqlstate) as calls:
        response = send()
        ran_within_retries(calls(), sqlstate)
    api_503(response, EXPECTED[sqlstate], sqlstate)
    nothing_booked(resource)
    assert send().status_code == 201  # the fault gone, the same request books


@pytest.mark.parametrize("sqlstate", UNAVAILABLE + BUSY)
def test_page_booking_on_a_failing_database_is_a_503_page(
    page_client: Client, sqlstate: str
) -> None:
    resource = ResourceFactory(capacity=5)
    send = page_write(page_client, resource)
    with failing_writes(sqlstate) as calls:
        response = send()
        ran_within_retries(calls(), sqlstate)
    page_503(response, EXPECTED[sqlstate], sqlstate)
    nothing_booked(resource)
    assert page_write(page_client, resource)().status_code == 302


@pytest.mark.parametrize("sqlstate", UNAVAILABLE + BUSY)
def test_api_read_on_a_failing_database_is_a_503_problem(book_api: Api, sqlstate: str) -> None:
    resource = ResourceFactory(capacity=5)
    send = api_read(book_api, resource)
    with failing_reads(sqlstate) as calls:
        response = send()
        assert calls() >= 1
    api_503(response, EXPECTED[sqlstate], sqlstate)
    assert send().status_code == 200


@pytest.mark.parametrize("sqlstate", UNAVAILABLE + BUSY)
def test_page_read_on_a_failing_database_is_a_503_page(page_client: Client, sqlstate: str) -> None:
    resource = ResourceFactory(capacity=5, name="Friday meetup")
    send = page_read(page_client, resource)
    with failing_reads(sqlstate) as calls:
        response = send()
        assert calls() >= 1
    page_503(response, EXPECTED[sqlstate], sqlstate)
    assert "Friday meetup" in send().content.decode()


def test_admin_page_on_a_failing_database_is_a_503_page(admin_client: Client) -> None:
    ResourceFactory()
    admin_client.raise_request_exception = False
    with failing_reads("53300"):
        response = admin_client.get(reverse("admin:resources_resource_changelist"))
    page_503(response, "unavailable", "53300")
    assert admin_client.get(reverse("admin:resources_resource_changelist")).status_code == 200


# 25006: a real read-only database, as after a failover to a standby ---------------------


def test_read_only_database_refuses_api_writes_and_keeps_serving_reads(book_api: Api) -> None:
    resource = ResourceFactory(capacity=5)
    book = api_write(book_api, resource)
    read = api_read(book_api, resource)
    assert read().status_code == 200  # the client's key was just used: no write to record it
    with read_only_database():
        api_503(book(), "unavailable", "25006")
        api_503(
            book_api.post(
                RESERVATIONS,
                {"resource": resource.pk, "quantity": 1},
                **{"Idempotency-Key": "failover-1"},
            ),
            "unavailable",
            "25006",
        )
        assert read().json()["available"] == 5
    nothing_booked(resource)
    assert book().status_code == 201


def test_a_key_not_used_for_a_while_still_reads_from_a_read_only_database(
    book_api: Api,
) -> None:
    """Its use would be recorded (a write): on a standby that waits, and the read is served."""
    resource = ResourceFactory(capacity=5)
    read = api_read(book_api, resource)
    ApiClient.objects.update(last_used_at=None)
    forget_known_keys()
    with read_only_database():
        assert read().json()["available"] == 5
    assert ApiClient.objects.get().last_used_at is None


def test_read_only_database_refuses_page_writes_and_keeps_serving_pages(
    page_client: Client,
) -> None:
    resource = ResourceFactory(capacity=5, name="Friday meetup")
    hold = page_write(page_client, resource)
    with read_only_database():
        page_503(hold(), "unavailable", "25006")
        assert "Friday meetup" in page_read(page_client, resource)().content.decode()
    nothing_booked(resource)
    assert hold().status_code == 302


def test_a_session_the_read_only_database_cannot_save_is_a_503_page(
    page_client: Client, settings: Any
) -> None:
    # The session is saved in a middleware, after the page was rendered. Its save fails;
    # Django calls that a 400 (SessionInterrupted), and the project's 400 handler finds the
    # database failure underneath.
    settings.ROOT_URLCONF = "tests.chaos.session_urls"
    assert page_client.get("/remember/").status_code == 200
    with read_only_database():
        page_503(page_client.get("/remember/"), "unavailable", "25006")
    assert page_client.get("/remember/").status_code == 200


# What escapes a middleware, and the mapping itself ----------------------------------------


def raised_by_the_database(sqlstate: str) -> DatabaseError:
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DO $$ BEGIN {raising(sqlstate)} END $$")
    except DatabaseError as exc:
        return exc
    raise AssertionError("the database raised nothing")


@pytest.mark.parametrize("path", ["/api/v1/resources/", "/", "/admin/"])
def test_the_500_handler_turns_a_database_failure_into_a_503(path: str) -> None:
    request = RequestFactory().get(path)
    error = raised_by_the_database("57P03")
    try:
        raise error
    except DatabaseError:
        response = error_pages.server_error(request)
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    nothing_leaked(response.content, "57P03")
    if path.startswith("/api/"):
        assert response["Content-Type"] == "application/problem+json"
        assert b'"code": "unavailable"' in response.content
    else:
        assert b'data-error-code="unavailable"' in response.content


def session_interrupted_by(cause: BaseException) -> SessionInterrupted:
    """What Django's SessionMiddleware raises when the session's save failed (for any
    reason: the database's error is only the context of the context)."""
    try:
        try:
            raise cause
        except BaseException:
            raise UpdateError from None
    except UpdateError:
        try:
            raise SessionInterrupted("The request's session was deleted")
        except SessionInterrupted as interrupted:
            return interrupted


@pytest.mark.parametrize("path", ["/api/v1/resources/", "/r/friday/"])
def test_a_session_lost_to_a_database_failure_is_a_503_not_a_400(path: str) -> None:
    failure = raised_by_the_database("25006")
    response = error_pages.bad_request(RequestFactory().get(path), session_interrupted_by(failure))
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    nothing_leaked(response.content, "25006")
    # A session really deleted meanwhile (a logout in another tab) is still a 400.
    deleted = DatabaseError("Forced update did not affect any rows.")
    response = error_pages.bad_request(RequestFactory().get(path), session_interrupted_by(deleted))
    assert response.status_code == 400


def test_the_500_handler_still_says_500_for_a_bug() -> None:
    for path in ("/api/v1/resources/", "/"):
        try:
            raise RuntimeError("secret internal detail")
        except RuntimeError:
            response = error_pages.server_error(RequestFactory().get(path))
        assert response.status_code == 500
        assert b"secret" not in response.content


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        *[(sqlstate, Unavailable) for sqlstate in UNAVAILABLE],
        *[(sqlstate, Busy) for sqlstate in BUSY],
        ("25006", Unavailable),  # read-only transaction
        ("25P03", Unavailable),  # idle-in-transaction timeout ended the session
        ("57P05", Unavailable),  # idle-session timeout
        ("58030", Unavailable),  # I/O error
        ("55P03", Busy),  # lock_timeout
        ("57014", Busy),  # statement_timeout
        ("23505", None),  # a unique violation not mapped by its service is a bug
        ("42P01", None),  # undefined table: a bug
        ("22012", None),  # division by zero: a bug
    ],
)
def test_database_errors_map_by_sqlstate(sqlstate: str, expected: type | None) -> None:
    error = raised_by_the_database(sqlstate)
    mapped = database_error_to_domain(error)
    assert type(mapped) is (expected or type(None))
    assert mapped is None or LEAKED_DETAIL not in mapped.detail
    # The driver's own error, unwrapped, maps the same.
    assert type(database_error_to_domain(error.__cause__ or error)) is type(mapped)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("could not connect to server: Connection refused"),
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg.InterfaceError("the connection is closed"),
    ],
)
def test_a_lost_connection_without_a_sqlstate_is_unavailable(error: Exception) -> None:
    assert isinstance(database_error_to_domain(error), Unavailable)


def test_message_text_decides_nothing() -> None:
    # A bug whose message reads like an outage stays a bug (a 500), and the reverse.
    bug = InternalError("server closed the connection unexpectedly; too many connections")
    bug.__cause__ = psycopg.errors.lookup("42703")("connection refused")
    assert database_error_to_domain(bug) is None
    outage = InternalError("column x does not exist")
    outage.__cause__ = psycopg.errors.lookup("25006")("syntax error")
    assert isinstance(database_error_to_domain(outage), Unavailable)
