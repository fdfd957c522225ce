"""App instances in real gunicorn processes on loopback ports, sharing the test database,
and a staff member's browser-less admin session (log in, change system settings)."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from reservo import settings as project_settings
from tests.conftest import free_port, start_gunicorn, subprocess_database_url, wait_until
from tests.settings_app.admin_form import CHANGE_URL, settings_form

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# Every instance of one test signs sessions alike, as a real deployment does.
SECRET_KEY = "instances-" + secrets.token_urlsafe(32)


def ensure_collected_static() -> None:
    """The instances' pages need the static manifest, as under `make serve`."""
    # The project's own STATIC_ROOT: the suite overrides the setting in this process only.
    manifest = Path(project_settings.STATIC_ROOT) / "staticfiles.json"
    if manifest.exists() and all(
        name in manifest.read_text() for name in ("admin/css/base.css", "reservo/reservo.css")
    ):
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        check=True,
        timeout=600,
    )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Http:
    """A cookie-keeping HTTP client (stdlib only) that never follows redirects."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), self._NoRedirect()
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5,
    ) -> Response:
        data = None
        all_headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            all_headers["Referer"] = self.base + path
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        # The base is always http://127.0.0.1:<port> of an instance this module started.
        request = urllib.request.Request(  # noqa: S310
            self.base + path, data=data, method=method, headers=all_headers
        )
        try:
            with self.opener.open(request, timeout=timeout) as reply:
                return Response(reply.status, dict(reply.headers.items()), reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers.items()), error.read())

    def csrf_token(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status == 200, (path, page.status)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)


@dataclass
class Instance:
    base: str
    process: subprocess.Popen[bytes]

    def http(self) -> Http:
        return Http(self.base)

    def get_ok(self, path: str) -> bool:
        try:
            return self.http().request("GET", path, timeout=1).status == 200
        except OSError:
            return False


@contextmanager
def app_instance(**env: str) -> Iterator[Instance]:
    """One gunicorn instance on a free 127.0.0.1 port; stopped (SIGTERM, then SIGKILL)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "RESERVO_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "SECRET_KEY": SECRET_KEY,
        "DEBUG": "0",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RESERVO_WEB_WORKERS": "2",
        "RESERVO_LOG_LEVEL": "WARNING",
        "RESERVO_GRACEFUL_TIMEOUT_S": "5",
        # The suite may load the machine: a slow first connection is not what is tested.
        "RESERVO_DB_CONNECT_TIMEOUT_S": "15",
        **env,
    }
    with tempfile.TemporaryFile() as output:
        process = start_gunicorn(environment, stdout=output, stderr=subprocess.STDOUT)
        instance = Instance(f"http://127.0.0.1:{port}", process)
        try:
            wait_until(
                lambda: process.poll() is not None or instance.get_ok("/healthz"),
                START_TIMEOUT_S,
                f"the instance on port {port} did not start",
            )
            assert process.poll() is None, "the instance exited at start"
            yield instance
        except BaseException:
            output.seek(0)
            sys.stderr.write(output.read().decode(errors="replace")[-5000:])
            raise
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_TIMEOUT_S)


class StaffSession:
    """A staff member logged in to one instance's admin over HTTP."""

    def __init__(self, instance: Instance, username: str, password: str) -> None:
        self.http = instance.http()
        token = self.http.csrf_token("/admin/login/")
        reply = self.http.request(
            "POST",
            "/admin/login/?next=/admin/",
            form={"csrfmiddlewaretoken": token, "username": username, "password": password},
        )
        assert reply.status == 302 and reply.headers["Location"] == "/admin/", reply.status

    def save_settings(self, **values: str) -> None:
        form = settings_form(**values)
        if not form["maintenance_mode"]:
            del form["maintenance_mode"]  # an unchecked box is not sent
        form["csrfmiddlewaretoken"] = self.http.csrf_token(CHANGE_URL)
        reply = self.http.request("POST", CHANGE_URL, form=form)
        assert reply.status == 302, (reply.status, reply.text[-2000:])


def book_over_api(instance: Instance, key: str, resource_id: int) -> Response:
    return instance.http().request(
        "POST",
        "/api/v1/reservations/",
        json_body={"resource": resource_id, "quantity": 1},
        headers={"Authorization": f"Api-Key {key}"},
    )
