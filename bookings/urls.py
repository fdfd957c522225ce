"""Customer booking pages."""

from django.urls import path  # noqa: F401  (routes added here)

app_name = "bookings"
urlpatterns: list = []
