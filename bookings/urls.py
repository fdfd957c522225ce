"""Customer booking pages, the live availability they poll, and the staff's check-in page."""

from django.urls import path

from bookings import views
from bookings.views import staff

app_name = "bookings"
urlpatterns = [
    path("", views.home, name="home"),
    path("r/<slug:slug>/", views.resource_detail, name="resource"),
    path("checkout/<str:reference>/", views.checkout, name="checkout"),
    path("checkout/<str:reference>/release/", views.release_hold, name="release"),
    path("confirmed/<str:reference>/", views.confirmed, name="confirmed"),
    path("b/<str:reference>/", views.manage, name="manage"),
    path("b/<str:reference>/cancel/", views.cancel, name="cancel"),
    path("staff/check-in/", staff.check_in, name="staff_check_in"),
    path("live/resources.json", views.live_resources, name="live_resources"),
    path("live/<int:resource_id>.json", views.live_resource, name="live_resource"),
]
