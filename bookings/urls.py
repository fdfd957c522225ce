"""Customer booking pages and the live availability they poll."""

from django.urls import path

from bookings import views

app_name = "bookings"
urlpatterns = [
    path("", views.home, name="home"),
    path("r/<slug:slug>/", views.resource_detail, name="resource"),
    path("checkout/<str:reference>/", views.checkout, name="checkout"),
    path("checkout/<str:reference>/release/", views.release_hold, name="release"),
    path("confirmed/<str:reference>/", views.confirmed, name="confirmed"),
    path("b/<str:reference>/", views.manage, name="manage"),
    path("b/<str:reference>/cancel/", views.cancel, name="cancel"),
    path("live/resources.json", views.live_resources, name="live_resources"),
    path("live/<int:resource_id>.json", views.live_resource, name="live_resource"),
]
