"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import path

from reservo import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]
