"""The demo and its published staff login stay on the embedded servers."""

from __future__ import annotations

import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from tests.conftest import free_port, wait_until


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_the_demo_refuses_external_servers(variable: str) -> None:
    environment = {**os.environ, variable: "postgres://reservo:secret@db.example.com/reservo"}
    result = subprocess.run(
        [sys.executable, "-m", "reservo.demo"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{variable} is set" in result.stderr
    assert "published staff login" in result.stderr
    assert "Starting" not in result.stdout  # nothing was started


@pytest.mark.django_db
def test_the_demo_staff_user_is_refused_on_another_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
    with pytest.raises(CommandError, match="only created on the embedded database"):
        call_command("ensure_demo_staff", "staff", "reservo-demo")
    assert not get_user_model().objects.filter(username="staff").exists()


@pytest.mark.django_db
def test_the_demo_staff_user_is_made_on_the_embedded_database() -> None:
    if os.environ.get("DATABASE_URL"):
        pytest.skip("the suite runs on an external database")
    call_command("ensure_demo_staff", "staff", "reservo-demo")
    call_command("ensure_demo_staff", "staff", "reservo-demo")  # once
    assert get_user_model().objects.get(username="staff").is_superuser


# Stopping the demo ----------------------------------------------------------------------
# Each run starts the demo on embedded servers of its own (RESERVO_DATA_DIR), on a free
# loopback port, so that the servers the rest of the suite uses are never stopped.


@pytest.fixture(scope="module")
def demo_data_dir() -> Iterator[Path]:
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        pytest.skip("the demo runs on the embedded servers only")
    path = Path(tempfile.mkdtemp(prefix="reservo-demo-test-"))
    try:
        yield path
    finally:
        _embedded(path, "stop")  # in case a run failed half-way
        shutil.rmtree(path, ignore_errors=True)


def _demo_environment(data_dir: Path, port: int) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "RESERVO_DATA_DIR", "DJANGO_SETTINGS_MODULE")
    }
    return {
        **environment,
        "RESERVO_DATA_DIR": str(data_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RESERVO_WEB_WORKERS": "1",
    }


def _embedded(data_dir: Path, command: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "reservo.embedded", command],
        cwd=settings.BASE_DIR,
        env={**os.environ, "RESERVO_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Output:
    """What a process writes, read on a thread as it comes (a pipe or a terminal)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.text, self.lock = fd, "", threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # a terminal whose last writer closed it
                chunk = b""
            if not chunk:
                return
            with self.lock:
                self.text += chunk.decode(errors="replace").replace("\r\n", "\n")

    def has(self, needle: str) -> bool:
        with self.lock:
            return needle in self.text

    def finish(self) -> str:
        self.thread.join(timeout=30)
        os.close(self.fd)
        return self.text


def _assert_ended_cleanly(returncode: int, output: str, data_dir: Path, port: int) -> None:
    assert returncode == 0, output
    assert "Interrupt" not in output, output
    assert "make: ***" not in output, output
    assert not re.search(r"\bError\b", output), output
    assert "Traceback" not in output, output
    assert not _answers(port)  # gunicorn is gone
    status = _embedded(data_dir, "status")
    assert "postgres: stopped" in status and "redis: stopped" in status, status


def test_ctrl_c_in_a_terminal_ends_make_run_cleanly(demo_data_dir: Path) -> None:
    """`make run` in a terminal, stopped with Ctrl-C: the terminal sends SIGINT to its
    foreground process group, make's included; make neither reports an interruption nor
    ends with one."""
    if not shutil.which("setsid") or not shutil.which("make"):
        pytest.skip("needs setsid (util-linux) and make")
    port = free_port()
    controller, terminal = pty.openpty()
    # make in a session of its own, with the terminal as its controlling terminal. The
    # run's prerequisites (the demo's packages, the compiled translations) are taken as
    # made (`-o`): the suite never installs packages nor writes into the tree.
    made = [".venv/.installed-demo"] + [
        str(po.with_suffix(".mo").relative_to(settings.BASE_DIR))
        for po in Path(settings.BASE_DIR).glob("locale/*/LC_MESSAGES/*.po")
    ]
    process = subprocess.Popen(
        ["setsid", "--ctty", "make", *(f"--old-file={path}" for path in made), "run"],
        cwd=settings.BASE_DIR,
        env=_demo_environment(demo_data_dir, port),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = Output(controller)
    try:
        wait_until(lambda: output.has("Press Ctrl-C to stop."), 180, "the demo did not start")
        assert _answers(port)
        os.write(controller, b"\x03")  # Ctrl-C, as typed
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    _assert_ended_cleanly(process.returncode, output.finish(), demo_data_dir, port)


@pytest.mark.parametrize(
    ("how", "when"),
    [
        ("SIGINT to its process group", "running"),
        ("SIGTERM", "running"),
        ("SIGINT to its process group", "starting"),
    ],
)
def test_the_demo_ends_cleanly_when_asked_to_stop(demo_data_dir: Path, how: str, when: str) -> None:
    """The demo's entry point as `make run` runs it, without a terminal (a supervisor, a
    script): stopped while it runs or while it starts, it stops everything it started and
    ends with status 0."""
    port = free_port()
    reader, writer = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "reservo.demo"],
        cwd=settings.BASE_DIR,
        env=_demo_environment(demo_data_dir, port),
        stdin=subprocess.DEVNULL,
        stdout=writer,
        stderr=writer,
        process_group=0,
    )
    os.close(writer)
    output = Output(reader)
    try:
        ready = "Press Ctrl-C to stop." if when == "running" else "Starting the embedded"
        wait_until(lambda: output.has(ready), 180, "the demo did not start")
        if how == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = output.finish()
    _assert_ended_cleanly(process.returncode, text, demo_data_dir, port)
    if when == "starting":
        assert "Reservo is running" not in text


def test_the_demo_names_a_port_in_use_before_it_starts_anything(demo_data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "reservo.demo"],
            cwd=settings.BASE_DIR,
            env=_demo_environment(demo_data_dir, port),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert f"make run PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Starting" not in result.stdout  # nothing was started


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines (Linux's /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except OSError:
            continue  # ended meanwhile
    return found


def test_the_demo_replaces_a_worker_that_ends(demo_data_dir: Path) -> None:
    """The worker's watchdog ends a worker that is stuck (status 70); whatever ended it,
    the demo starts another and goes on serving."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc")
    port = free_port()
    reader, writer = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "reservo.demo"],
        cwd=settings.BASE_DIR,
        env=_demo_environment(demo_data_dir, port),
        stdin=subprocess.DEVNULL,
        stdout=writer,
        stderr=writer,
        process_group=0,
    )
    os.close(writer)
    output = Output(reader)
    try:
        wait_until(lambda: output.has("Press Ctrl-C to stop."), 180, "the demo did not start")

        def workers() -> list[int]:
            return [pid for pid, line in _children(process.pid).items() if "run_worker" in line]

        wait_until(lambda: len(workers()) == 1, 30, "no worker")
        first = workers()[0]
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: output.has("starting another"), 30, "the worker was not replaced")
        wait_until(lambda: len(workers()) == 1 and workers()[0] != first, 30, "no new worker")
        assert _answers(port)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = output.finish()
    assert "The worker ended with status -9; starting another." in text
    _assert_ended_cleanly(process.returncode, text, demo_data_dir, port)
