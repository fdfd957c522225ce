"""Fixtures for the booking pages: page helpers and a real browser."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.test import Client

FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def form_token(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    match = FORM_TOKEN.search(response.content.decode())
    assert match, "the page has no booking form"
    return match.group(1)


# Browser ------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _skip_loudly(reason: str) -> None:
    message = f"BROWSER TESTS SKIPPED: {reason}"
    print("\n" + "!" * len(message) + "\n" + message + "\n" + "!" * len(message))
    pytest.skip(message)


@pytest.fixture
def chromium(browser_env: None) -> Iterator[Any]:
    """A real headless Chromium (Debian's), driven by Playwright; skipped loudly if absent.

    One per test: Playwright's sync API runs an event loop in this thread for as long as
    it is open, and Django refuses ORM calls next to a running loop unless told otherwise.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_loudly("the playwright package is not installed (pip install -e '.[dev]').")
    if not os.path.exists(CHROMIUM):
        _skip_loudly(f"{CHROMIUM} is missing (as root: apt-get install -y chromium).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # While Playwright runs, the ORM keeps its connections in a separate context
            # (asgiref's Local follows the running loop); close them before it stops.
            connections.close_all()


@pytest.fixture(scope="session")
def web_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """The app on a loopback port, in a thread of this process, sharing the test database."""
    from pytest_django.live_server_helper import LiveServer

    with django_db_blocker.unblock():
        server = LiveServer("127.0.0.1:0")
    try:
        yield server.url
    finally:
        server.stop()
        with django_db_blocker.unblock():
            _await_server_connections_closed()


def _await_server_connections_closed(timeout: float = 10.0) -> None:
    """Request threads close their database connections as their browser sockets close;
    the test database can only be dropped once they have."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (others,) = cursor.fetchone()
        if not others:
            return
        time.sleep(0.05)
    raise AssertionError("the test server left database connections open")


@pytest.fixture
def browser_env(monkeypatch: pytest.MonkeyPatch, transactional_db: None) -> None:
    # The ORM calls a browser test makes are plain synchronous ones, in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def new_page(web_server: str, chromium: Any) -> Iterator[Any]:
    """Opens pages in fresh browser contexts (separate cookies: separate customers)."""
    contexts = []

    def open_page(width: int = 1000, height: int = 800) -> Any:
        context = chromium.new_context(
            base_url=web_server, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
