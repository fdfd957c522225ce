"""Log lines carry ISO 8601 times with their offset: the application's, and gunicorn's own
(its master, its workers, its access log)."""

from __future__ import annotations

import logging
import os
import re
import signal
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from reservo.logs import LINE_FORMAT, IsoFormatter
from tests.conftest import free_port, start_gunicorn, subprocess_database_url, wait_until

# The start of every log line: the time in UTC to the millisecond, with its offset.
ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


def test_log_times_are_iso_8601_with_an_offset() -> None:
    record = logging.LogRecord("reservo", logging.INFO, __file__, 1, "hello", None, None)
    line = IsoFormatter(LINE_FORMAT).format(record)
    stamp, rest = line.split(" ", 1)
    assert rest == "INFO reservo hello"
    assert re.fullmatch(ISO_TIME, stamp)
    assert abs(datetime.fromisoformat(stamp).timestamp() - record.created) < 0.001


@pytest.mark.django_db(transaction=True)
def test_gunicorn_writes_its_own_lines_in_the_same_format(tmp_path: Path) -> None:
    port = free_port()
    errors, access = tmp_path / "stderr.log", tmp_path / "stdout.log"
    with errors.open("wb") as stderr, access.open("wb") as stdout:
        server = start_gunicorn(
            {
                **os.environ,
                "DATABASE_URL": subprocess_database_url(),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "RESERVO_WEB_WORKERS": "2",
                "RESERVO_ACCESS_LOG": "-",
                # The suite's tree has no collected static files (`make run` and `make serve`
                # collect them first): whitenoise's warning about it is not a log line.
                "PYTHONWARNINGS": "ignore:No directory at:UserWarning",
            },
            stdout=stdout,
            stderr=stderr,
        )
        try:

            def answered() -> bool:
                url = f"http://127.0.0.1:{port}/healthz"
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        return bool(response.status == 200)
                except OSError:
                    return False

            wait_until(answered, 60, "gunicorn did not answer")
            wait_until(
                lambda: errors.read_text().count("Booting worker") == 2, 30, "a worker is missing"
            )
            wait_until(lambda: "/healthz" in access.read_text(), 10, "no access log line")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    assert server.returncode == 0
    error_lines, access_lines = errors.read_text().splitlines(), access.read_text().splitlines()
    for needle in ("Starting gunicorn", "Listening at", "Booting worker", "Worker exiting"):
        assert any(needle in line for line in error_lines), needle
    assert any("Shutting down" in line for line in error_lines)
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in access_lines)
    for line in error_lines + access_lines:
        assert re.match(ISO_TIME + r" (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ", line), line
    # The formatter gives the time once: the access line carries no second, local one.
    for line in access_lines:
        assert not re.search(r"\[\d\d/\w{3}/\d{4}:", line), line
