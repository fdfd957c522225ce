"""Fixtures for the booking pages: plain static storage, page helpers, a real browser."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

STATIC_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    """Pages link their assets by name: no collectstatic manifest is needed in tests."""
    settings.STORAGES = STATIC_STORAGES


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


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A real headless Chromium (Debian's), driven by Playwright; skipped loudly if absent."""
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


@pytest.fixture(scope="session")
def web_server(django_db_blocker: Any) -> Iterator[str]:
    """The app on a loopback port, in a thread of this process, sharing the test database."""
    from pytest_django.live_server_helper import LiveServer

    with django_db_blocker.unblock():
        server = LiveServer("127.0.0.1:0")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def browser_env(monkeypatch: pytest.MonkeyPatch, transactional_db: None) -> None:
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test
    # makes here are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def new_page(chromium: Any, web_server: str, browser_env: None) -> Iterator[Any]:
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
