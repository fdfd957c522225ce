"""Routes under /api/: the v1 contract (API.md), the OpenAPI schema and its docs."""

from django.urls import path  # noqa: F401  (routes added here)

urlpatterns: list = []
