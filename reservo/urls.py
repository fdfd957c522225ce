"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include, path

from reservo import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/", include("reservo.api_urls")),
    path("admin/", admin.site.urls),
    # The language switcher's form posts here (Django's set_language): a cookie, then back.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("bookings.urls")),
]

# Branded HTML pages; problem+json for paths under /api/.
handler400 = "reservo.error_pages.bad_request"
handler404 = "reservo.error_pages.page_not_found"
handler500 = "reservo.error_pages.server_error"
