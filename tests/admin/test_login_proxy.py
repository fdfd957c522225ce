"""Admin login behind a proxy: the lockout counts the client's address (the one the
trusted proxy appended to X-Forwarded-For, only when RESERVO_BEHIND_PROXY is on), a
username failing from many addresses is slowed down, and passwords are validated."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory, override_settings

from reservo import limits
from reservo.addresses import address_subject, client_address
from settings_app.auth import login_delay_seconds, login_failure_record
from tests.admin.conftest import PASSWORD
from tests.conftest import make_redis_unreachable, run_concurrently
from tests.settings_app.instances import Http, Instance, app_instance, ensure_collected_static

LOGIN = "/admin/login/?next=/admin/"


# The client address -----------------------------------------------------------------------


def address_of(remote: str = "10.0.0.2", forwarded: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


@override_settings(RESERVO_BEHIND_PROXY=False)
def test_without_a_proxy_the_forwarded_header_is_ignored() -> None:
    assert address_of("203.0.113.7", "198.51.100.1") == "203.0.113.7"


@override_settings(RESERVO_BEHIND_PROXY=True, RESERVO_TRUSTED_PROXIES=1)
def test_behind_one_proxy_the_last_entry_is_the_client() -> None:
    assert address_of(forwarded="198.51.100.1, 203.0.113.7") == "203.0.113.7"
    assert address_of(forwarded=" 203.0.113.7 ") == "203.0.113.7"
    assert address_of(forwarded="[2001:db8::7]:4711") == "2001:db8::7"
    assert address_of(forwarded="203.0.113.7:4711") == "203.0.113.7"
    assert address_of(forwarded="::ffff:203.0.113.7") == "203.0.113.7"
    # No header (a request that did not come through the proxy) or garbage: the peer.
    assert address_of() == "10.0.0.2"
    assert address_of(forwarded="not-an-address") == "10.0.0.2"


@override_settings(RESERVO_BEHIND_PROXY=True, RESERVO_TRUSTED_PROXIES=2)
def test_behind_two_proxies_the_entry_before_the_inner_proxys_is_the_client() -> None:
    assert address_of(forwarded="198.51.100.1, 203.0.113.7, 10.0.0.9") == "203.0.113.7"
    assert address_of(forwarded="203.0.113.7") == "10.0.0.2"  # fewer hops than proxies


def test_ipv6_clients_are_limited_by_their_64() -> None:
    assert address_subject("2001:db8:1:2::7") == address_subject("2001:db8:1:2:ffff::1")
    assert address_subject("2001:db8:1:2::7") != address_subject("2001:db8:1:3::7")
    assert address_subject("203.0.113.7") == "203.0.113.7"


# A served instance, with spoofed headers ----------------------------------------------------


def login(instance: Instance, password: str, forwarded: str) -> Any:
    http = Http(instance.base)
    token = http.csrf_token("/admin/login/")
    return http.request(
        "POST",
        LOGIN,
        form={"csrfmiddlewaretoken": token, "username": "boss", "password": password},
        headers={"X-Forwarded-For": forwarded},
    )


@pytest.fixture
def served_superuser(transactional_db: None) -> Any:
    ensure_collected_static()
    return get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)


LOCKOUT_ENV = {"RESERVO_LOGIN_FAILURE_LIMIT": "3", "RESERVO_LOGIN_DELAY_AFTER": "1000"}


@pytest.mark.slow
def test_served_without_a_proxy_a_forwarded_header_does_not_escape_the_lockout(
    served_superuser: Any,
) -> None:
    with app_instance(RESERVO_BEHIND_PROXY="0", **LOCKOUT_ENV) as instance:
        statuses = [login(instance, "wrong", f"198.51.100.{i}").status for i in range(1, 4)]
        retry = login(instance, PASSWORD, "203.0.113.99")

    assert statuses == [200, 200, 429]
    assert retry.status == 429  # the same peer (127.0.0.1), whatever the header says
    assert int(retry.headers["Retry-After"]) > 0


@pytest.mark.slow
def test_served_behind_a_proxy_the_last_forwarded_address_is_locked_out(
    served_superuser: Any,
) -> None:
    # The test talks plain HTTP to the instance, as the proxy would after TLS: cookies
    # marked Secure would not be sent back.
    plain_http = {"SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0"}
    with app_instance(RESERVO_BEHIND_PROXY="1", **plain_http, **LOCKOUT_ENV) as instance:
        # The client writes what it likes first; the proxy appends the address it saw.
        statuses = [
            login(instance, "wrong", f"192.0.2.{i}, 203.0.113.10").status for i in range(1, 4)
        ]
        # Another client (a colleague behind the same proxy) is not locked out, even when
        # it claims the locked address first...
        colleague = login(instance, PASSWORD, "203.0.113.10, 203.0.113.20")
        # ...and the locked client stays locked out, whatever it claims first.
        locked = login(instance, PASSWORD, "203.0.113.20, 203.0.113.10")

    assert statuses == [200, 200, 429]
    assert colleague.status == 302
    assert locked.status == 429


# The per-username delay ------------------------------------------------------------------------


def attempt(password: str, address: str) -> Any:
    return Client().post(LOGIN, {"username": "boss", "password": password}, REMOTE_ADDR=address)


def test_the_delay_doubles_up_to_its_maximum(settings: Any) -> None:
    settings.RESERVO_LOGIN_DELAY_AFTER = 3
    settings.RESERVO_LOGIN_DELAY_MAX_S = 60
    assert [login_delay_seconds(n) for n in range(2, 8)] == [0, 1, 2, 4, 8, 16]
    assert login_delay_seconds(40) == 60


def failures_of(username: str) -> int:
    return int(limits.redis().get(limits.key("login-failures", limits.digest(username))) or 0)


def let_the_delay_pass(username: str) -> None:
    limits.redis().delete(limits.key("login-gate", limits.digest(username)))


@pytest.mark.django_db
@override_settings(AXES_FAILURE_LIMIT=100, RESERVO_LOGIN_DELAY_AFTER=3)
def test_failures_from_many_addresses_delay_the_next_attempt(superuser: Any) -> None:
    statuses = [attempt("wrong", f"198.51.100.{i}").status_code for i in range(1, 4)]
    assert statuses == [200, 200, 200]  # each address is far from its own lockout
    assert failures_of("boss") == 3
    for _ in range(5):  # more failures, from anywhere: the delay is now 32 s
        login_failure_record("boss")

    delayed = attempt(PASSWORD, "203.0.113.50")

    assert delayed.status_code == 429
    assert 1 <= int(delayed["Retry-After"]) <= 32
    assert "Please wait" in delayed.content.decode()
    assert failures_of("boss") == 8  # a delayed attempt checked no password

    let_the_delay_pass("boss")
    assert attempt(PASSWORD, "203.0.113.50").status_code == 302
    # A success clears the count: the next failures are not delayed.
    assert failures_of("boss") == 0
    assert attempt("wrong", "198.51.100.9").status_code == 200
    assert attempt("wrong", "198.51.100.9").status_code == 200


@pytest.mark.django_db(transaction=True)
@override_settings(AXES_FAILURE_LIMIT=100, RESERVO_LOGIN_DELAY_AFTER=3)
def test_attempts_sent_together_while_delayed_are_checked_one_at_a_time(superuser: Any) -> None:
    for _ in range(8):  # a 32 s delay
        login_failure_record("boss")
    let_the_delay_pass("boss")

    responses = run_concurrently(6, lambda i: attempt("wrong", f"198.51.100.{i + 1}"))

    assert sorted(response.status_code for response in responses) == [200] + [429] * 5
    assert failures_of("boss") == 9


@pytest.mark.django_db
@override_settings(AXES_FAILURE_LIMIT=100, RESERVO_LOGIN_DELAY_AFTER=1)
def test_without_redis_there_is_no_delay_and_a_line_is_logged(
    superuser: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make_redis_unreachable(settings)
    with caplog.at_level(logging.WARNING, logger=settings.DJANGO_REDIS_LOGGER):
        statuses = [attempt("wrong", f"198.51.100.{i}").status_code for i in range(1, 4)]
        success = attempt(PASSWORD, "203.0.113.50")

    assert statuses == [200, 200, 200]
    assert success.status_code == 302
    assert any("login delay limit not applied" in record.getMessage() for record in caplog.records)


# Passwords ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password", ["short-pw1", "password1234", "12345678901234", "bossbossboss1"]
)
def test_weak_staff_passwords_are_refused(password: str) -> None:
    user = get_user_model()(username="bossbossboss", email="boss@example.com")
    with pytest.raises(ValidationError):
        validate_password(password, user)


@pytest.mark.django_db
def test_a_long_uncommon_password_is_accepted() -> None:
    user = get_user_model()(username="boss", email="boss@example.com")
    validate_password("plum-Orbit-41-lantern", user)
