"""The project's URLs, and the benchmark's floor and reference views beside them."""

from django.urls import include, path

from reservo.urls import handler404, handler500
from reservo.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("bench/floor/", include("bench.floor")),
    path("bench/reference/", include("bench.reference")),
    *project_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
