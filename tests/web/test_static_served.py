"""Every static file a page refers to is served by a real instance, as under `make serve`.

collectstatic keeps only the hashed copies (WHITENOISE_KEEP_ONLY_HASHED_FILES), so a
reference by the plain name anywhere (a template, a stylesheet's url(), a source map
comment) would be a 404 in production and nowhere else.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model

from tests.factories import ResourceFactory
from tests.settings_app.instances import (
    Http,
    StaffSession,
    app_instance,
    ensure_collected_static,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PAGE_REFERENCE = re.compile(r'(?:src|href)="(/static/[^"]+)"')
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")
# Only the comment at the very end of a file: bundles hold such text inside strings.
SOURCE_MAP = re.compile(r"[#@] sourceMappingURL=([^\s*]+)\s*(?:\*/)?\s*$")


def _references(path: str, body: bytes) -> set[str]:
    text = body.decode(errors="replace")
    found = {m.group(1) for m in SOURCE_MAP.finditer(text[-300:])}
    if path.endswith(".css"):
        found |= {m.group(1) for m in CSS_URL.finditer(text)}
    targets = set()
    for reference in found:
        if reference.startswith(("data:", "#")) or urlsplit(reference).scheme:
            continue
        targets.add(urlsplit(urljoin(path, reference)).path)
    return targets


PASSWORD = "static-files-pass"


def _static_closure(http: Http, pages: list[str]) -> dict[str, int]:
    """The status of every static file the pages lead to, through stylesheets and maps."""
    pending: set[str] = set()
    for page in pages:
        reply = http.request("GET", page)
        assert reply.status == 200, (page, reply.status)
        pending |= set(PAGE_REFERENCE.findall(reply.text))
    statuses: dict[str, int] = {}
    while pending:
        path = pending.pop()
        reply = http.request("GET", path)
        statuses[path] = reply.status
        if reply.status == 200:
            pending |= _references(path, reply.body) - statuses.keys()
    return statuses


def test_every_static_file_the_pages_refer_to_is_served() -> None:
    ensure_collected_static()
    resource = ResourceFactory()
    get_user_model().objects.create_superuser("static", "static@example.com", PASSWORD)
    public = ["/", f"/r/{resource.slug}/", "/admin/login/", "/api/docs/"]
    # The admin's pages with the most media: lists with actions, forms with widgets.
    admin = [
        "/admin/",
        "/admin/bookings/reservation/",
        "/admin/resources/resource/add/",
        f"/admin/resources/resource/{resource.pk}/change/",
    ]
    with app_instance() as instance:
        statuses = _static_closure(instance.http(), public)
        staff = StaffSession(instance, "static", PASSWORD)
        statuses |= _static_closure(staff.http, admin)
    assert any(path.endswith(".css") for path in statuses)
    assert any(path.endswith(".js") for path in statuses)
    assert any(path.endswith(".map") for path in statuses)
    assert {path: status for path, status in statuses.items() if status != 200} == {}
