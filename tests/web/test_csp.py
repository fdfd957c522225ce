"""Content-Security-Policy: every response has one; the pages need nothing it forbids (no
inline script or style, nothing from elsewhere), so a real browser reports no violation;
only the API docs page gets the inline script and styles it needs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from bookings.services import reservation_book
from tests.conftest import CUSTOMER
from tests.factories import ResourceFactory, SeatedResourceFactory
from tests.web.conftest import form_token


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.mark.django_db
def test_every_response_has_the_policy(client: Client) -> None:
    for path in ["/", "/admin/login/", "/healthz", "/api/v1/resources/", "/no-such-page/"]:
        policy = directives(client.get(path)["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["object-src"] == ["'none'"]


@pytest.mark.django_db
def test_the_api_docs_alone_get_inline_script_and_styles(client: Client) -> None:
    policy = directives(client.get("/api/docs/")["Content-Security-Policy"])
    assert "'unsafe-inline'" in policy["script-src"]
    assert "'unsafe-inline'" in policy["style-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in settings.RESERVO_CSP


class _InlineFinder(HTMLParser):
    """What a page has that the policy forbids: inline scripts and styles, event handler
    attributes, javascript: URLs, and resources from other origins."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in values
        if tag == "style":
            self.problems.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            elsewhere = bool(re.match(r"^(https?:)?//", value or "")) and not (
                value or ""
            ).startswith("http://testserver/")
            if name in ("src", "href", "action") and (
                (value or "").startswith("javascript:") or elsewhere
            ):
                self.problems.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline <script>")


def assert_policy_compliant(html: str, where: str) -> None:
    finder = _InlineFinder()
    finder.feed(html)
    assert not finder.problems, f"{where}: {finder.problems}"


@pytest.mark.django_db
def test_the_pages_need_nothing_the_policy_forbids(client: Client, admin_client: Client) -> None:
    capacity, seated = ResourceFactory(capacity=5), SeatedResourceFactory()
    booking = reservation_book(
        resource_id=capacity.pk,
        actor=CUSTOMER,
        quantity=1,
        customer_name="Ada",
        customer_email="ada@example.com",
    )
    reference = booking.reservation.reference
    pages: list[tuple[Client, str]] = [
        (client, "/"),
        (client, reverse("bookings:resource", args=[capacity.slug])),
        (client, reverse("bookings:resource", args=[seated.slug])),
        (client, "/no-such-page/"),
        (client, "/admin/login/"),
        (admin_client, "/admin/"),
        (admin_client, "/admin/resources/resource/"),
        (admin_client, f"/admin/resources/resource/{seated.pk}/change/"),
        (admin_client, "/admin/bookings/reservation/"),
    ]
    client.get(reverse("bookings:manage", args=[reference]), {"token": booking.manage_token})
    pages += [
        (client, reverse("bookings:manage", args=[reference])),
        (client, reverse("bookings:cancel", args=[reference])),
    ]
    url = reverse("bookings:resource", args=[capacity.slug])
    held = client.post(url, {"form_token": form_token(client, url), "quantity": 1})
    if held.status_code == 302:
        pages.append((client, held["Location"]))
    for who, path in pages:
        response = who.get(path)
        assert response.status_code in (200, 404), path
        assert_policy_compliant(response.content.decode(), path)


def violations_of(page: Any) -> list[str]:
    """The policy violations the browser reports on `page`'s console, as they come."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return seen


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_browser_reports_no_violation(new_page: Any) -> None:
    resource = SeatedResourceFactory(seats__rows=["A"], seats__per_row=4)
    page = new_page()
    violations = violations_of(page)
    page.goto("/")
    page.goto(f"/r/{resource.slug}/")
    page.locator("label[for^='seat-']").first.click()
    page.get_by_role("button", name="Hold my places").click()
    page.locator("[data-countdown]").wait_for()
    page.goto("/admin/login/")
    assert violations == []

    page.goto("/api/docs/")
    page.locator(".swagger-ui .info").wait_for()  # the docs render under their own policy
    assert violations == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_negative_control_the_docs_break_under_the_pages_policy(
    new_page: Any, settings: Any
) -> None:
    """The browser does enforce the policy and the test sees it (the test can fail)."""
    settings.RESERVO_CSP_BY_PATH = {}
    page = new_page()
    violations = violations_of(page)
    page.goto("/api/docs/")
    page.wait_for_timeout(500)
    assert violations
