"""The language of each request, for a site whose URLs carry no language prefix.

Django's LocaleMiddleware also serves language-prefixed URLs (`i18n_patterns`): on every
request it looks the path's first segment up as a language ("api", "r", "admin"), twice,
and a failed lookup is not cached; with Django's hundred languages that costs more than the
rest of the middleware. Reservo has no prefixed URLs (a test keeps it so), so this does
the rest of Django's work only: the language from the cookie or Accept-Language, and the
Content-Language and Vary headers.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from django.utils.cache import patch_vary_headers


class UnprefixedLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        translation.activate(translation.get_language_from_request(request))
        request.LANGUAGE_CODE = translation.get_language()

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        patch_vary_headers(response, ("Accept-Language",))
        response.headers.setdefault("Content-Language", translation.get_language())
        return response
