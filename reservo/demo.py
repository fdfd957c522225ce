"""`make run`: the demo on the embedded servers, served by gunicorn as in production.

Stopping: Ctrl-C, SIGTERM, Ctrl-\\ or the terminal closing stops the server and the worker,
then the embedded servers, and the demo ends with status 0, whether it was running or still
starting (a start-up command runs to its end first: none is cut short, so none prints a
traceback). In a terminal the demo takes the terminal's foreground for as long as it runs, as
a shell does for a job: Ctrl-C then reaches the demo and the processes it started, and not
the `make` that started it, which would otherwise end with the interruption's status (130)
even after a clean stop.

A worker that ends while the demo runs (its watchdog ends one that is stuck) is replaced;
the server ending ends the demo.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# How long the server may take to answer its first request before the demo gives up.
STARTUP_SECONDS = 60
DEMO_USER, DEMO_PASSWORD = "staff", "reservo-demo"
DID_NOT_START = "Reservo did not start; see the lines above."
# A worker that ends is replaced, unless the one before it ended less than this long ago.
WORKER_RESTART_SECONDS = 60
# The signals that stop the demo: Ctrl-C, a supervisor's stop, the terminal closing, Ctrl-\.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def main() -> int:
    # The demo publishes its staff password: it runs on the embedded servers only, never on
    # a database or cache that a shell's environment happens to point at.
    external = [name for name in ("DATABASE_URL", "REDIS_URL") if os.environ.get(name)]
    if external:
        print(
            f"The demo runs on the embedded PostgreSQL and Redis only, and {' and '.join(external)} "
            f"{'is' if len(external) == 1 else 'are'} set: it would create its published staff "
            f"login there. Unset {' and '.join(external)} to run the demo, or serve that "
            "database with `make serve`.",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservo.settings")
    os.environ.setdefault("DEBUG", "0")
    demo = Demo()
    if not _free(demo.host, demo.port):
        other = int(demo.port) + 1 if demo.port.isdigit() else 8001
        print(
            f"{demo.host}:{demo.port} is in use (another server, or a demo already running): "
            f"stop it, or choose another port, e.g. `make run PORT={other}`.",
            file=sys.stderr,
        )
        return 1
    terminal = _take_the_terminal()
    if terminal is not None:
        # The shell does not know this job's group: suspended, it could not be resumed.
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    try:
        return demo.run()
    finally:
        if terminal is not None:
            _give_back_the_terminal(*terminal)


class Demo:
    """The demo's processes: start-up commands run one after the other, then the server and
    the worker; the first stop signal stops those two, then the embedded servers."""

    def __init__(self) -> None:
        self.host = os.environ.get("HOST", "127.0.0.1")
        self.port = os.environ.get("PORT", "8000")
        self.python = sys.executable
        self.stopping = False
        self.servers: list[subprocess.Popen[bytes]] = []
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, frame: object) -> None:
        if not self.stopping:
            # os.write: print() must not be entered again from a signal handler. The
            # terminal may have gone (SIGHUP).
            with contextlib.suppress(OSError):
                os.write(sys.stdout.fileno(), b"\nStopping Reservo...\n")
        self.stopping = True
        for server in self.servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)  # gunicorn: a graceful stop

    @staticmethod
    def _popen(command: list[str]) -> subprocess.Popen[bytes]:
        """Start `command` with Ctrl-C and Ctrl-\\ blocked, which it keeps: those reach the
        whole foreground group, and only the demo acts on them, stopping the others in order
        (a start-up command is not cut short, a server does not print a traceback because
        Ctrl-C came before it set up its own handling). The demo gets them once unblocked."""
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGQUIT})
        try:
            return subprocess.Popen(command, cwd=BASE_DIR)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _step(self, *command: str) -> bool:
        """Run a start-up command to its end (a stop waits for it); False if it failed."""
        return self._popen(list(command)).wait() == 0

    def _manage(self, *args: str) -> bool:
        return self._step(self.python, "manage.py", *args)

    def run(self) -> int:
        host, port, python = self.host, self.port, self.python
        # Links in the demo's emails point at this server; its emails are printed on the console.
        os.environ.setdefault("RESERVO_PUBLIC_URL", f"http://{host}:{port}")
        print("Starting the embedded PostgreSQL and Redis (first run: ~10 s)...", flush=True)
        steps: list[Callable[[], bool]] = [
            lambda: self._step(python, "-m", "reservo.embedded", "start"),
            lambda: self._manage("migrate", "--noinput", "-v0"),
            lambda: self._manage("collectstatic", "--noinput", "-v0"),
            lambda: self._manage("seed_demo"),
            lambda: self._manage("ensure_demo_staff", DEMO_USER, DEMO_PASSWORD),
        ]
        for step in steps:
            if self.stopping:
                return self._end(0)
            if not step():
                return self._end(1, DID_NOT_START)

        gunicorn = str(Path(python).parent / "gunicorn")
        server = self._popen(
            [gunicorn, "-c", "reservo/gunicorn_conf.py", "reservo.wsgi:application"]
        )
        self.servers.append(server)
        worker_command = [python, "manage.py", "run_worker"]
        worker = self._popen(worker_command)
        self.servers.append(worker)

        base = f"http://{host}:{port}"
        if not self._answers(f"{base}/healthz", server):
            return self._end(1, DID_NOT_START)
        print(
            f"\nReservo is running.\n"
            f"  Booking pages:  {base}/\n"
            f"  Staff admin:    {base}/admin/  (user {DEMO_USER!r}, password {DEMO_PASSWORD!r})\n"
            f"  API docs:       {base}/api/docs/\n"
            f"  Health:         {base}/healthz\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        restarted_at = -float(WORKER_RESTART_SECONDS)
        # Until a stop signal, or until the server ends by itself. A worker that ends (its
        # watchdog ends one that is stuck) is replaced, once in WORKER_RESTART_SECONDS.
        while not self.stopping:
            if server.poll() is not None:
                why = f"gunicorn ended with status {server.returncode}; stopping Reservo."
                return self._end(server.returncode if server.returncode > 0 else 1, why)
            if worker.poll() is not None:
                if time.monotonic() - restarted_at < WORKER_RESTART_SECONDS:
                    why = f"The worker ended again (status {worker.returncode}); stopping Reservo."
                    return self._end(worker.returncode if worker.returncode > 0 else 1, why)
                print(
                    f"The worker ended with status {worker.returncode}; starting another.",
                    file=sys.stderr,
                    flush=True,
                )
                restarted_at = time.monotonic()
                self.servers.remove(worker)
                worker = self._popen(worker_command)
                self.servers.append(worker)
            time.sleep(0.5)
        return self._end(0)

    def _end(self, status: int, why: str = "") -> int:
        """Stop the server and the worker, then the embedded servers. A stop asked for is a
        clean end (status 0), whatever each process said on its way out."""
        if self.stopping:
            status = 0
        elif why:
            print(why, file=sys.stderr, flush=True)
        self.stopping = True
        for server in self.servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
        for server in self.servers:
            server.wait()
        self._step(self.python, "-m", "reservo.embedded", "stop")
        return status

    def _answers(self, url: str, server: subprocess.Popen[bytes]) -> bool:
        """Whether the server answers `url` within a minute (False as soon as it exits or
        the demo is asked to stop)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and server.poll() is None and not self.stopping:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                    return bool(response.status == 200)
            except OSError:
                time.sleep(0.2)
        return False


def _free(host: str, port: str) -> bool:
    """Whether gunicorn can listen on host:port (it would retry for a few seconds, then
    fail, while whatever holds the port might answer the demo's first request)."""
    try:
        address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
        with socket.socket(address[0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
            probe.bind(address[4])
    except (OSError, ValueError):
        return False
    return True


def _take_the_terminal() -> tuple[int, int] | None:
    """Make the demo the foreground process group of its controlling terminal, as a shell
    does for a job, if it runs in that terminal's foreground. Returns what
    `_give_back_the_terminal` needs."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_CLOEXEC)  # stdin may be redirected
    except OSError:
        return None  # no controlling terminal: Ctrl-C cannot come
    previous = os.getpgrp()
    try:
        # In the background there is nothing to take; as the leader of its own group
        # already, Ctrl-C reaches nobody else.
        if os.tcgetpgrp(fd) == previous and previous != os.getpid():
            os.setpgid(0, 0)
            try:
                _set_foreground(fd, os.getpgrp())
            except OSError:
                os.setpgid(0, previous)
                raise
            return fd, previous
    except OSError:
        pass
    os.close(fd)
    return None


def _give_back_the_terminal(fd: int, group: int) -> None:
    # If that group has gone, its shell takes the terminal back when it sees it end.
    with contextlib.suppress(OSError):
        _set_foreground(fd, group)
    os.close(fd)


def _set_foreground(fd: int, group: int) -> None:
    # A group that is not in the foreground is stopped by SIGTTOU when it changes the
    # terminal's foreground group, unless it ignores the signal meanwhile.
    before = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, group)
    finally:
        signal.signal(signal.SIGTTOU, before)


if __name__ == "__main__":
    sys.exit(main())
