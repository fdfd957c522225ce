"""gunicorn's access log (reservo/gunicorn_conf.py) records no query string and no Referer:
a manage link's token travels in both."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, start_gunicorn, subprocess_database_url, wait_until


@pytest.mark.django_db(transaction=True)
def test_the_access_log_keeps_no_token(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    port = free_port()
    server = start_gunicorn(
        {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "RESERVO_WEB_WORKERS": "1",
            "RESERVO_ACCESS_LOG": str(log),
        }
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz?token=secret-in-query",
            headers={"Referer": "http://127.0.0.1/b/RSV-1/?token=secret-in-referer"},
        )

        def answered() -> bool:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_until(answered, 60, "gunicorn did not answer")
        wait_until(lambda: log.exists() and "/healthz" in log.read_text(), 10, "no log line")
    finally:
        server.terminate()
        server.wait(timeout=30)
    line = log.read_text().splitlines()[-1]
    assert '"GET /healthz HTTP/1.1" 200' in line
    assert "secret" not in log.read_text()
