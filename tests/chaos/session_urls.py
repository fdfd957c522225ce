"""The project's URLs and error handlers, plus a page that changes the session, as a page
does when it remembers something for this browser."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from reservo import urls as project


def remember(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse("remembered")


urlpatterns = [path("remember/", remember), *project.urlpatterns]
handler400 = getattr(project, "handler400", "django.views.defaults.bad_request")
handler404 = project.handler404
handler500 = project.handler500
