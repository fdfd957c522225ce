"""Each request's language: what Django's LocaleMiddleware would choose for these URLs,
without its language-prefix lookups."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware
from django.test import Client, RequestFactory
from django.utils import translation

from reservo.languages import UnprefixedLocaleMiddleware


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    yield
    translation.deactivate()


def test_no_url_carries_a_language_prefix() -> None:
    # What makes the lean middleware equal to Django's (the test below).
    assert is_language_prefix_patterns_used(settings.ROOT_URLCONF) == (False, False)


def chosen(middleware_class: type[LocaleMiddleware], request: HttpRequest, status: int) -> tuple:
    middleware = middleware_class(lambda request: HttpResponse(status=status))
    response = middleware(request)
    return (
        request.LANGUAGE_CODE,  # type: ignore[attr-defined]
        response.status_code,
        response.get("Content-Language"),
        response.get("Vary"),
    )


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("path", ["/", "/api/v1/resources/", "/admin/login/", "/de/admin/", "/fr/"])
@pytest.mark.parametrize(
    ("accept", "cookie"),
    [
        (None, None),
        ("de", None),
        ("fr-CA,fr;q=0.9,en;q=0.5", None),
        ("zh-hant-tw", None),
        ("xx-yy", None),
        ("de", "fr"),
        (None, "pt-br"),
        (None, "nonsense"),
    ],
)
def test_it_chooses_what_djangos_middleware_chooses(
    status: int, path: str, accept: str | None, cookie: str | None
) -> None:
    def request() -> HttpRequest:
        made = RequestFactory().get(path, **({"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}))
        if cookie:
            made.COOKIES[settings.LANGUAGE_COOKIE_NAME] = cookie
        return made

    assert chosen(UnprefixedLocaleMiddleware, request(), status) == chosen(
        LocaleMiddleware, request(), status
    )


@pytest.mark.django_db
def test_the_admin_speaks_the_browsers_language(client: Client) -> None:
    reply = client.get("/admin/login/", headers={"Accept-Language": "de"})
    assert reply.status_code == 200
    assert reply["Content-Language"] == "de"
    assert "Accept-Language" in reply["Vary"]
    assert "Anmelden" in reply.content.decode()
