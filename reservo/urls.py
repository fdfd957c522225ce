"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include, path

from reservo import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/", include("reservo.api_urls")),
    path("admin/", admin.site.urls),
    path("", include("bookings.urls")),
]
