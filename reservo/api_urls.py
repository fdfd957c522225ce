"""Routes under /api/: the v1 contract (API.md), the OpenAPI schema and its docs."""

from django.urls import URLPattern, URLResolver, include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bookings.api import views as bookings_api
from resources import api as resources_api


class IdConverter:
    """A primary key: digits that fit a PostgreSQL bigint (more is simply not found)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

v1: list[URLPattern | URLResolver] = [
    path("resources/", resources_api.ResourceListView.as_view(), name="resource-list"),
    path(
        "resources/<id:resource_id>/",
        resources_api.ResourceDetailView.as_view(),
        name="resource-detail",
    ),
    path(
        "resources/<id:resource_id>/seats/",
        resources_api.ResourceSeatsView.as_view(),
        name="resource-seats",
    ),
    path("reservations/", bookings_api.ReservationListView.as_view(), name="reservation-list"),
    path(
        "reservations/<str:public_id>/",
        bookings_api.ReservationDetailView.as_view(),
        name="reservation-detail",
    ),
    path(
        "reservations/<str:public_id>/confirm/",
        bookings_api.ReservationConfirmView.as_view(),
        name="reservation-confirm",
    ),
    path(
        "reservations/<str:public_id>/cancel/",
        bookings_api.ReservationCancelView.as_view(),
        name="reservation-cancel",
    ),
    path(
        "reservations/<str:public_id>/check-in/",
        bookings_api.ReservationCheckInView.as_view(),
        name="reservation-check-in",
    ),
    path("check-in/", bookings_api.CheckInByCodeView.as_view(), name="check-in"),
    path(
        "analytics/bookings/",
        bookings_api.BookingAnalyticsView.as_view(),
        name="analytics-bookings",
    ),
    path("webhooks/", include("bookings.api_webhooks")),
]

app_name = "api"
urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
